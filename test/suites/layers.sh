#!/usr/bin/env bash
# The layering of src/ (test/layers.sh) on the objects this run built.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec bash "$TOP/test/layers.sh"
