"""Guards follow the schema (issue 27): a model whose guarded fields go
through Django's own migration operations (RenameField, AlterField,
RemoveField, RenameModel, Add/RemoveConstraint), each applied exactly as
`migrate` applies it, to a guarded app and to an unguarded twin.  After
every step the same writes go to both, and the two tables must hold the
same rows and raise the same errors; the guards must still be attached
to the columns they followed."""
import pytest
from django.db import connection, migrations, models, transaction
from django.db.migrations.state import ProjectState

from conftest import sql

GUARDED, TWIN = "evo", "evotwin"
BIG = 2**63 - 1


def create_model():
    return migrations.CreateModel(
        "Thing",
        [
            ("id", models.BigAutoField(primary_key=True)),
            ("pink", models.IntegerField(default=0)),
            ("hits", models.IntegerField(default=0)),
            ("big", models.BigIntegerField(default=BIG)),
            ("pos", models.PositiveBigIntegerField(default=4398046511104)),
            ("code", models.IntegerField(default=0)),
        ],
    )


class App:
    """One app's migration state, advanced operation by operation."""

    def __init__(self, label):
        self.label = label
        self.state = ProjectState()
        self.model = "thing"

    def apply(self, operation):
        new_state = self.state.clone()
        operation.state_forwards(self.label, new_state)
        with connection.schema_editor(atomic=True) as editor:
            operation.database_forwards(self.label, editor, self.state, new_state)
        self.state = new_state
        if isinstance(operation, migrations.RenameModel):
            self.model = operation.new_name_lower

    @property
    def Model(self):
        return self.state.apps.get_model(self.label, self.model)

    @property
    def table(self):
        return self.Model._meta.db_table


def outcome(fn):
    try:
        with transaction.atomic():
            fn()
        return "ok"
    except Exception as e:  # the same error on both sides is the point
        return "%s: %s" % (type(e).__name__, str(e).split("\n")[0].replace(TWIN, GUARDED))


def rows(app):
    return sql("SELECT * FROM %s ORDER BY id" % connection.ops.quote_name(app.table))


@pytest.fixture
def apps():
    guarded, twin = App(GUARDED), App(TWIN)
    for app in (guarded, twin):
        sql("DROP TABLE IF EXISTS %s_thing, %s_gizmo CASCADE" % (app.label, app.label))
        app.apply(create_model())
    # every integer column of the guarded table, default bounds, as the
    # issue's Django run attached them; and the duplicates guard
    sql("SELECT integrity_guard.guard_counter(%s, ARRAY['id', 'pink', 'hits', 'big', 'pos', 'code'])",
        [guarded.table])
    sql("SELECT integrity_guard.guard_duplicates(%s)", [guarded.table])
    yield guarded, twin
    for app in (guarded, twin):
        sql("DROP TABLE IF EXISTS %s CASCADE" % app.table)


def both(apps, fn):
    results = [outcome(lambda app=app: fn(app.Model)) for app in apps]
    assert results[0] == results[1], results
    assert rows(apps[0]) == rows(apps[1])
    return results[0]


def guarded_columns(app):
    found = sql("SELECT kind, columns FROM integrity_guard.guards WHERE table_name = %s::regclass ORDER BY 1",
                [app.table])
    return {kind: cols for kind, cols in found}


def step(apps, operation):
    for app in apps:
        app.apply(operation)


def test_migration_steps_succeed_and_write_as_without_the_guard(apps):
    guarded, twin = apps
    # Django's defaults: 2**63-1 and 4398046511104 are valid bigint values
    assert both(apps, lambda M: M.objects.create(pink=1, hits=1, code=1)) == "ok"
    assert sql("SELECT big, pos FROM %s" % guarded.table) == [(BIG, 4398046511104)]

    step(apps, migrations.RenameField("thing", "pink", "blue"))
    assert both(apps, lambda M: M.objects.create(blue=2, hits=2, code=2)) == "ok"
    assert both(apps, lambda M: M.objects.filter(blue=2).update(blue=models.F("blue") + 1)) == "ok"
    assert "blue" in guarded_columns(guarded)["counter"]

    step(apps, migrations.AlterField("thing", "hits", models.BigIntegerField(default=0)))
    assert both(apps, lambda M: M.objects.filter(code=1).update(hits=4398046511104)) == "ok"

    # bigint -> int: a value that does not fit fails the migration, on both
    # sides alike; once it fits, the migration goes through
    errors = []
    for app in apps:
        with pytest.raises(Exception) as raised:
            app.apply(migrations.AlterField("thing", "hits", models.IntegerField(default=0)))
        errors.append(str(raised.value).split("\n")[0])
    assert errors[0] == errors[1] == "integer out of range"
    assert both(apps, lambda M: M.objects.update(hits=5)) == "ok"
    step(apps, migrations.AlterField("thing", "hits", models.IntegerField(default=0)))

    step(apps, migrations.AlterField("thing", "blue", models.SmallIntegerField(default=0)))
    assert both(apps, lambda M: M.objects.create(blue=32767, hits=3, code=3)) == "ok"
    # past the new type: the guard saturates where the twin fails
    guarded.Model.objects.filter(code=3).update(blue=models.F("blue") + 1)
    assert sql("SELECT blue FROM %s WHERE code = 3" % guarded.table) == [(32767,)]
    assert outcome(lambda: twin.Model.objects.filter(code=3).update(blue=models.F("blue") + 1)) \
        .startswith("DataError")

    step(apps, migrations.AlterField("thing", "code", models.CharField(max_length=20, default="")))
    assert both(apps, lambda M: M.objects.create(blue=4, hits=4, code="four")) == "ok"
    assert "code" not in guarded_columns(guarded)["counter"]

    step(apps, migrations.RemoveField("thing", "pos"))
    assert both(apps, lambda M: M.objects.create(blue=5, hits=5, code="five")) == "ok"

    step(apps, migrations.RenameModel("Thing", "Gizmo"))
    assert both(apps, lambda M: M.objects.create(blue=6, hits=6, code="six")) == "ok"

    for app in apps:
        app.apply(migrations.AddConstraint(
            "gizmo", models.UniqueConstraint(fields=["code"], name="%s_code_unique" % app.label)))
    # a duplicate: the same error on both (guard_duplicates in raise mode)
    assert both(apps, lambda M: M.objects.create(blue=7, hits=7, code="six")).startswith("IntegrityError")
    for app in apps:
        app.apply(migrations.RemoveConstraint("gizmo", "%s_code_unique" % app.label))
    assert both(apps, lambda M: M.objects.create(blue=7, hits=7, code="six")) == "ok"

    # the guards are still there, on the columns they followed
    assert guarded_columns(guarded) == {"counter": ["id", "blue", "hits", "big"], "unique": []}
    # and every write of the run went the same way as on the twin
    assert len(rows(guarded)) == 7
