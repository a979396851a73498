"""Unit tests for ``dsg_lib.filters`` (no database needed)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    Uuid,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column, relationship

from dsg_lib import ConstraintViolationError, InvalidInputError
from dsg_lib.filters import OPERATORS, build_filters, check_value, model_columns, value_checker


class Color(enum.Enum):
    red = 1
    blue = 2


class Base(DeclarativeBase):
    pass


class Thing(Base):
    __tablename__ = "flt_thing"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(10))
    qty: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parts: Mapped[list[Part]] = relationship(back_populates="thing")
    doubled = column_property(qty * 2)


class Part(Base):
    __tablename__ = "flt_part"
    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("flt_thing.id"))
    thing: Mapped[Thing] = relationship(back_populates="parts")


def compiled(clause: Any, dialect: Any = None) -> str:
    return str(clause.compile(dialect=dialect or postgresql.dialect()))


def test_operators_are_the_documented_set() -> None:
    assert set(OPERATORS) == {
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "in",
        "not_in",
        "like",
        "ilike",
        "contains",
        "startswith",
        "endswith",
        "is_null",
    }


def test_model_columns_only_real_columns() -> None:
    assert set(model_columns(Thing)) == {"id", "name", "qty"}  # no relationship, no expression property
    with pytest.raises(InvalidInputError):
        model_columns(object)
    with pytest.raises(InvalidInputError):
        model_columns("flt_thing")


@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_builds_a_bound_clause(op: str) -> None:
    value: Any = {
        "in": [1, 2],
        "not_in": [1, 2],
        "like": "a%",
        "ilike": "a%",
        "contains": "a",
        "startswith": "a",
        "endswith": "a",
        "is_null": True,
    }.get(op, 5)
    column = "name" if op in ("like", "ilike", "contains", "startswith", "endswith") else "qty"
    if column == "name" and not isinstance(value, str):
        value = "x"
    (clause,) = build_filters(Thing, {f"{column}__{op}": value})
    sql = compiled(clause)
    assert column in sql
    if op != "is_null":
        assert "%(" in sql or "__[POSTCOMPILE" in sql  # a bound parameter, never a literal


def test_plain_key_is_eq_and_none_is_is_null() -> None:
    (clause,) = build_filters(Thing, {"qty": 3})
    assert "flt_thing.qty = " in compiled(clause)
    (clause,) = build_filters(Thing, {"qty": None})
    assert "IS NULL" in compiled(clause)
    (clause,) = build_filters(Thing, {"qty__ne": None})
    assert "IS NOT NULL" in compiled(clause)


def test_values_are_never_formatted_into_sql() -> None:
    evil = "x' OR '1'='1"
    for op in ("eq", "ne", "like", "contains", "startswith", "endswith"):
        (clause,) = build_filters(Thing, {f"name__{op}": evil[:10]})
        assert "OR '1'" not in compiled(clause)


def test_literal_match_escapes_wildcards_on_servers() -> None:
    (clause,) = build_filters(Thing, {"name__contains": "5%_"}, dialect="postgresql")
    params = clause.compile(dialect=postgresql.dialect()).params
    assert any("5/%/_" in str(v) for v in params.values())
    assert "ESCAPE" in compiled(clause)


def test_literal_match_on_sqlite_avoids_like() -> None:
    for op in ("contains", "startswith", "endswith"):
        (clause,) = build_filters(Thing, {f"name__{op}": "a%"}, dialect="sqlite")
        sql = compiled(clause, sqlite.dialect())
        assert "LIKE" not in sql.upper()


@pytest.mark.parametrize(
    "key",
    [
        "nope",
        "parts",
        "doubled",
        "__class__",
        "_sa_instance_state",
        "metadata",
        "name__regex",
        "name__",
        "name__eq__eq",
        "__eq",
        "",
        "name; drop table x",
        "name__eq OR 1=1",
        "x" * 5000,
        "qty__IN",
        "Name",
    ],
)
def test_bad_filter_names(key: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_filters(Thing, {key: 1})
    assert len(str(info.value)) < 600


def test_non_string_filter_name() -> None:
    with pytest.raises(InvalidInputError):
        build_filters(Thing, {1: 1})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("qty__lt", None),
        ("qty__in", 5),
        ("qty__in", "12"),
        ("qty__in", [1, "2"]),
        ("qty__is_null", 1),
        ("qty__is_null", "true"),
        ("name__like", 5),
        ("name__contains", None),
        ("name__startswith", b"x"),
        ("name__contains", "nul\x00"),
        ("qty", "1"),
        ("name", "x" * 11),
    ],
)
def test_bad_filter_values(key: str, value: Any) -> None:
    with pytest.raises(InvalidInputError):
        build_filters(Thing, {key: value})


def test_validate_false_skips_value_checks() -> None:
    (clause,) = build_filters(Thing, {"qty": "not an int"}, validate=False)
    assert "qty" in compiled(clause)


# --------------------------------------------------------------------------- check_value

GOOD: list[tuple[Any, Any]] = [
    (Integer(), 5),
    (Integer(), -(2**31)),
    (Integer(), 2**31 - 1),
    (SmallInteger(), 2**15 - 1),
    (BigInteger(), 2**63 - 1),
    (Float(), 1),
    (Float(), 1.5),
    (Numeric(), decimal.Decimal("1.25")),
    (String(3), "abc"),
    (String(3), "日本語"),
    (Text(), "x" * 100_000),
    (String(), "😀"),
    (Boolean(), False),
    (DateTime(), dt.datetime(2020, 1, 1)),
    (Date(), dt.date(2020, 1, 1)),
    (LargeBinary(), b"\x00\x01"),
    (JSON(), {"a": [1, 2.5, None, True, "s"]}),
    (JSON(), [1]),
    (Uuid(), uuid.uuid4()),
    (Enum(Color), Color.red),
    (Enum("x", "y", name="xy"), "x"),
]
BAD: list[tuple[Any, Any]] = [
    (Integer(), "5"),
    (Integer(), 5.0),
    (Integer(), True),
    (Integer(), 2**31),
    (Integer(), -(2**31) - 1),
    (SmallInteger(), 2**15),
    (BigInteger(), 2**63),
    (Float(), "1.5"),
    (Float(), float("nan")),
    (Float(), float("inf")),
    (Float(), float("-inf")),
    (Float(), True),
    (Numeric(), decimal.Decimal("NaN")),
    (String(3), "abcd"),
    (String(), "a\x00b"),
    (String(), "\ud800"),
    (String(), "ok\udfffok"),
    (String(), 5),
    (String(), {"a": 1}),
    (String(), ["a"]),
    (String(), b"bytes"),
    (Boolean(), 1),
    (Boolean(), "true"),
    (DateTime(), "2020-01-01"),
    (Date(), "2020-01-01"),
    (LargeBinary(), "text"),
    (JSON(), {"a": float("nan")}),
    (JSON(), {1: "a"}),
    (JSON(), {"a": {1, 2}}),
    (JSON(), object()),
    (Uuid(), "not-a-uuid"),
    (Uuid(), 5),
    (Enum(Color), "green"),
    (Enum(Color), 1),
    (Enum("x", "y", name="xy"), "z"),
]

EXTRA: list[tuple[Any, Any]] = [
    (Numeric(5, 2), 123456.7),
    (Numeric(5, 2), decimal.Decimal("1.234")),
    (Numeric(5, 2), 1.5),
    (Numeric(), 1.25),
    (Numeric(), decimal.Decimal("1.25")),
    (Numeric(30, 10), decimal.Decimal("12345678901234567890.1234567890")),
    (DateTime(timezone=True), dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    (DateTime(timezone=True), dt.datetime(2024, 1, 1)),
    (DateTime(), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
    (String(36), uuid.UUID(int=5)),
    (Boolean(), None),
    (Integer(), None),
    (JSON(), None),
]


@pytest.mark.parametrize(("col_type", "value"), GOOD, ids=lambda v: repr(v)[:25])
def test_check_value_accepts(col_type: Any, value: Any) -> None:
    column = Column("c", col_type, nullable=True)
    check_value(column, value)


@pytest.mark.parametrize(("col_type", "value"), BAD, ids=lambda v: repr(v)[:25])
def test_check_value_rejects(col_type: Any, value: Any) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_value(Column("c", col_type, nullable=True), value)
    assert isinstance(info.value, ValueError)
    assert "'c'" in str(info.value)


def test_check_value_nulls() -> None:
    assert check_value(Column("c", Integer, nullable=True), None) is None
    with pytest.raises(ConstraintViolationError) as info:
        check_value(Column("c", Integer, nullable=False), None)
    assert (info.value.kind, info.value.constraint) == ("not_null", "c")
    assert check_value(Column("c", Integer, nullable=False, default=3), None) is None
    assert check_value(Column("c", Integer, nullable=False, server_default="3"), None) is None


def test_check_value_deep_json() -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    with pytest.raises(InvalidInputError):
        check_value(Column("c", JSON), deep)


def test_check_value_normalises_uuid_and_enum_names() -> None:
    u = uuid.uuid4()
    assert check_value(Column("c", Uuid()), str(u)) == u
    assert check_value(Column("c", Enum(Color)), "blue") is Color.blue


def test_check_value_with_variant_type() -> None:
    col = Column("c", String(5).with_variant(String(5, collation="utf8mb4_bin"), "mysql"))
    assert check_value(col, "abc") == "abc"
    with pytest.raises(InvalidInputError):
        check_value(col, "abcdef")
    (clause,) = build_filters(Thing, {"name__startswith": "a"}, dialect="mysql")
    assert "LIKE" in compiled(clause, mysql.dialect())


@pytest.mark.parametrize(("col_type", "value"), GOOD + BAD + EXTRA, ids=lambda v: repr(v)[:25])
@pytest.mark.parametrize("dialect", [None, "sqlite", "postgresql", "mysql"])
def test_value_checker_agrees_with_check_value(col_type: Any, value: Any, dialect: str | None) -> None:
    """Both come from one type table: the same result or the same error for every value."""
    column = Column("c", col_type, nullable=True)

    def outcome(check: Any) -> Any:
        try:
            return ("ok", check(value))
        except InvalidInputError as err:
            return ("error", str(err))

    expected = outcome(lambda v: check_value(column, v, dialect=dialect))
    assert outcome(value_checker(column, "c", dialect)) == expected


def test_check_value_type_table_rules() -> None:
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    aware = dt.datetime(2024, 1, 1, 12, 0, tzinfo=ist)
    assert check_value(Column("c", DateTime(timezone=True)), aware) == aware
    assert check_value(Column("c", DateTime(timezone=True)), aware).tzinfo is dt.timezone.utc
    assert (
        check_value(Column("c", DateTime(timezone=True)), dt.datetime(2024, 1, 1)).tzinfo is dt.timezone.utc
    )
    with pytest.raises(InvalidInputError):
        check_value(Column("c", DateTime()), aware)
    assert check_value(Column("c", Interval()), dt.timedelta(seconds=3)) == dt.timedelta(seconds=3)
    u = uuid.uuid4()
    assert check_value(Column("c", String(36)), u) == str(u)
    assert str(check_value(Column("c", JSON, nullable=True), None)) == "NULL"  # SQL NULL, not JSON null
    wide = decimal.Decimal("12345678901234567890.123456789")
    assert check_value(Column("c", Numeric(30, 10)), wide, dialect="postgresql") == wide
    with pytest.raises(InvalidInputError, match="15 significant digits"):
        check_value(Column("c", Numeric(30, 10)), wide, dialect="sqlite")
    for bad in (decimal.Decimal("1.001"), 1000, 123456.7, 0.1 + 0.2):
        with pytest.raises(InvalidInputError):
            check_value(Column("c", Numeric(5, 2)), bad)


@pytest.mark.parametrize(("col_type", "value"), GOOD + BAD + EXTRA, ids=lambda v: repr(v)[:25])
@pytest.mark.parametrize("dialect", [None, "sqlite", "postgresql", "mysql"])
def test_column_checker_passes_only_values_kept_unchanged(
    col_type: Any, value: Any, dialect: str | None
) -> None:
    """insert_many skips the row-by-row checks of a column whose column check passes: that is
    right only for values the value checker accepts and returns unchanged."""
    from dsg_lib.filters._value_checks import column_checker

    column = Column("c", col_type, nullable=True)
    check = column_checker(column, dialect)
    try:
        kept = value_checker(column, "c", dialect)(value) is value
    except (InvalidInputError, ConstraintViolationError):
        kept = False
    passed = check is not None and check([value, value])
    assert kept or not passed


def test_column_checker_passes_plain_columns_and_stops_at_one_odd_value() -> None:
    from dsg_lib.filters._value_checks import column_checker

    utc = dt.timezone.utc
    cases: list[tuple[Any, list[Any], list[Any]]] = [  # type, plain values, odd values
        (Integer(), [1, 2, 3], [True, 10**30, 1.0, None]),
        (Float(), [0.5, 1.5], [float("nan"), float("inf"), 1, None]),
        (String(5), ["ab", "abcde"], ["abcdef", "é", "a\x00", 5, None]),
        (Boolean(), [True, False], [1, None]),
        (DateTime(), [dt.datetime(2024, 1, 1)], [dt.datetime(2024, 1, 1, tzinfo=utc), dt.date(2024, 1, 1)]),
        (DateTime(timezone=True), [dt.datetime(2024, 1, 1, tzinfo=utc)], [dt.datetime(2024, 1, 1)]),
    ]
    for col_type, plain, odd in cases:
        check = column_checker(Column("c", col_type), "postgresql")
        assert check is not None and check(plain), col_type
        for value in odd:
            assert not check([*plain, value]), (col_type, value)
    assert column_checker(Column("c", JSON)) is None and column_checker(Column("c", Numeric(5, 2))) is None
