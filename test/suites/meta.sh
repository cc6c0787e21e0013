#!/usr/bin/env bash
# META.json (PGXN distribution metadata): it parses, has every key the PGXN
# Meta Spec 1.0.0 requires in the forms it allows, and its versions are the
# control file's default_version (as the semantic version PGXN demands:
# "1.2" is "1.2.0").  Prints "ok - ..." / "not ok - ...".
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
/usr/bin/python3 - "$TOP" <<'PY'
import json, os, re, sys

top = sys.argv[1]
results = []
def check(name, cond):
    results.append(cond)
    print(("ok - " if cond else "not ok - ") + name)

try:
    with open(os.path.join(top, "META.json"), encoding="utf-8") as f:
        meta = json.load(f)
    check("META.json parses as a JSON object", isinstance(meta, dict))
except Exception as e:
    print("not ok - META.json parses: %s" % e)
    sys.exit(1)

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
RANGE_ONE = r"((==|!=|<=|>=|<|>)\s*)?((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?|0)"
RANGE = re.compile(r"^%s(\s*,\s*%s)*$" % (RANGE_ONE, RANGE_ONE))
def term(s):
    return isinstance(s, str) and len(s) >= 2 and not re.search(r"[/\\\s\x00-\x1f\x7f]", s)
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
BASE = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec",
        "description", "generated_by", "tags", "no_index", "prereqs", "release_status",
        "resources"}

missing = [k for k in ("name", "version", "abstract", "maintainer", "license", "provides",
                       "meta-spec") if k not in meta]
check("every mandatory key is there (missing: %s)" % (missing or "none"), not missing)
unknown = [k for k in meta if k not in BASE and not re.match(r"^[xX]_.", k)]
check("no key the spec does not define (found: %s)" % (unknown or "none"), not unknown)
check("meta-spec is version 1.0.x", isinstance(meta.get("meta-spec"), dict)
      and re.match(r"^1\.0\.\d+$", str(meta["meta-spec"].get("version", ""))) is not None)
check("name is a term", term(meta.get("name")))
check("version is a semantic version", SEMVER.match(str(meta.get("version", ""))) is not None)
check("abstract is a non-empty string", isinstance(meta.get("abstract"), str) and meta["abstract"] != "")
m = meta.get("maintainer")
check("maintainer is a string or a list of strings",
      (isinstance(m, str) and m != "") or (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m)))
check("license is postgresql", meta.get("license") == "postgresql" and meta["license"] in LICENSES)
check("release_status is stable, testing or unstable",
      meta.get("release_status", "stable") in ("stable", "testing", "unstable"))

prov = meta.get("provides")
ok = isinstance(prov, dict) and len(prov) >= 1
for ext, p in (prov or {}).items():
    ok = ok and term(ext) and isinstance(p, dict) and "file" in p and "version" in p \
        and SEMVER.match(str(p["version"])) is not None \
        and all(k in ("file", "version", "abstract", "docfile", "docpath") or re.match(r"^[xX]_.", k) for k in p) \
        and os.path.isfile(os.path.join(top, p["file"])) \
        and ("docfile" not in p or os.path.isfile(os.path.join(top, p["docfile"])))
check("provides names each extension with an existing file and a semantic version", ok)

pre = meta.get("prereqs", {})
ok = isinstance(pre, dict)
for phase, rels in pre.items():
    ok = ok and phase in ("configure", "build", "test", "runtime", "develop") and isinstance(rels, dict) and rels
    for rel, reqs in rels.items():
        ok = ok and rel in ("requires", "recommends", "suggests", "conflicts") and isinstance(reqs, dict) and reqs
        for name, rng in reqs.items():
            ok = ok and term(name) and (rng == 0 or (isinstance(rng, str) and RANGE.match(rng) is not None))
check("prereqs are phases of relationships of version ranges", ok)
check("prereqs require PostgreSQL",
      "PostgreSQL" in pre.get("runtime", {}).get("requires", {}))
tags = meta.get("tags", [])
check("tags are a list of short strings",
      isinstance(tags, list) and all(isinstance(t, str) and 0 < len(t) <= 255 for t in tags))

# The versions match the control file and the extension's scripts.
control = open(os.path.join(top, "pg_integrity_guard.control"), encoding="utf-8").read()
dv = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M).group(1)
as_semver = dv if dv.count(".") == 2 else dv + ".0" * (2 - dv.count("."))
check("version %s is the control file's default_version %s" % (meta.get("version"), dv),
      meta.get("version") == as_semver)
check("provides.pg_integrity_guard.version is the control file's default_version",
      (prov or {}).get("pg_integrity_guard", {}).get("version") == as_semver)
scripts = os.listdir(os.path.join(top, "sql"))
check("an upgrade script reaches default_version %s" % dv,
      any(re.match(r"^pg_integrity_guard--[0-9.]+--%s\.sql$" % re.escape(dv), s) for s in scripts))
sys.exit(0 if all(results) else 1)
PY
