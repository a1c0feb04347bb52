"""Between protobuf messages and the tables that tabular models (sklearn, xgboost, ...) take.

Input rules (documented in the README):
- all fields single values          -> one row; the answer's fields are single values too
- all fields repeated scalars       -> columns; row i is the i-th element of every column
- one repeated sub-message field    -> rows; each element is a row whose fields are the columns
Columns keep the field order of the message, which is the feature order the model was trained on.

Output rules: a single output field takes the whole prediction (a list when it is repeated, the
first value when it is single); several output fields take the prediction's columns in order,
or the same-named columns of a data frame or dict.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor as FD

from runner_image.codec import is_map, is_repeated, scalar_value, type_name
from runner_image.errors import BadRequest, ModelRejected


@dataclass
class Table:
    columns: list[str]
    data: list[list]  # column-major: data[j] is column j
    single_row: bool

    @property
    def n_rows(self) -> int:
        return len(self.data[0]) if self.data else 0

    def as_array(self, dtype=None):
        import numpy as np  # not a runner dependency: the model libraries that take arrays bring it

        return np.asarray(self.data, dtype=dtype).T.reshape(self.n_rows, len(self.columns))

    def as_frame(self):
        import pandas as pd  # not a runner dependency: the models that take a DataFrame bring it

        return pd.DataFrame(dict(zip(self.columns, self.data, strict=True)), columns=self.columns)


def stack(parts: list[Table]) -> Table:
    """Several tables of the same columns as one (rows in order), for one model call over many requests."""
    columns = parts[0].columns
    data = [[v for part in parts for v in part.data[j]] for j in range(len(columns))]
    return Table(columns, data, single_row=False)


def split_rows(result, counts: list[int]) -> list | None:
    """The model's answer to stacked tables, cut back into one answer per table (`counts` rows each); None
    when it cannot be cut: its length is not the number of rows (a model that aggregates), or its type is
    not one of an array, a list, a data frame or a dict of columns."""
    total = sum(counts)
    if isinstance(result, dict):
        columns = {k: split_rows(v, counts) for k, v in result.items()}
        if any(v is None for v in columns.values()):
            return None
        return [{k: v[i] for k, v in columns.items()} for i in range(len(counts))]
    if getattr(result, "ndim", 1) == 0 or not hasattr(result, "__len__") or len(result) != total:
        return None
    rows = result.iloc if hasattr(result, "iloc") else result  # a data frame is cut by position
    if not isinstance(result, (list, tuple)) and not hasattr(result, "shape"):
        return None
    bounds, start = [], 0
    for count in counts:
        bounds.append((start, start + count))
        start += count
    return [rows[a:b] for a, b in bounds]


def input_shape(descriptor) -> str:
    """'single', 'columns' or 'rows'; raises for messages a table cannot represent."""
    fields = descriptor.fields
    if not fields:
        raise ModelRejected(f"input message {descriptor.name} has no fields")
    if len(fields) == 1 and _is_row_list(fields[0]):
        return "rows"
    if any(f.type == FD.TYPE_MESSAGE or is_map(f) for f in fields):
        raise ModelRejected(
            f"input message {descriptor.name} mixes nested messages with columns; a tabular model takes "
            "either scalar fields, repeated scalar fields, or one repeated message of scalar fields")
    repeated = [is_repeated(f) for f in fields]
    if all(repeated):
        return "columns"
    if not any(repeated):
        return "single"
    raise ModelRejected(f"input message {descriptor.name} mixes repeated and single fields; "
                        "make them all repeated (several rows) or all single (one row)")


def _is_row_list(field) -> bool:
    return (field.type == FD.TYPE_MESSAGE and is_repeated(field) and not is_map(field)
            and all(not is_repeated(f) and f.type != FD.TYPE_MESSAGE for f in field.message_type.fields))


def message_to_table(msg) -> Table:
    shape = input_shape(msg.DESCRIPTOR)
    if shape == "rows":
        field = msg.DESCRIPTOR.fields[0]
        columns = [f.name for f in field.message_type.fields]
        rows = getattr(msg, field.name)
        return Table(columns, [[getattr(r, c) for r in rows] for c in columns], single_row=False)
    columns = [f.name for f in msg.DESCRIPTOR.fields]
    if shape == "single":
        return Table(columns, [[getattr(msg, c)] for c in columns], single_row=True)
    data = [list(getattr(msg, c)) for c in columns]
    lengths = {c: len(col) for c, col in zip(columns, data, strict=True)}
    if len(set(lengths.values())) > 1:
        raise BadRequest(f"repeated fields are columns and must have the same length; got {lengths}",
                         {"lengths": lengths})
    return Table(columns, data, single_row=False)


def result_to_message(result, out_cls, single_row: bool):
    """Fill an output message from what the model returned."""
    msg = out_cls()
    fields = out_cls.DESCRIPTOR.fields
    if isinstance(result, out_cls):
        return result
    columns = _named_columns(result)
    if columns is not None and all(f.name in columns for f in fields):
        for f in fields:
            _assign(msg, f, columns[f.name], single_row)
        return msg
    if len(fields) == 1:
        _assign(msg, fields[0], _flatten_single_column(result, single_row), single_row)
        return msg
    matrix = _as_rows(result)
    if any(len(row) != len(fields) for row in matrix):
        raise _shape_error(out_cls, result, len(fields))
    for j, f in enumerate(fields):
        _assign(msg, f, [row[j] for row in matrix], single_row)
    return msg


def _named_columns(result) -> dict | None:
    if isinstance(result, dict):
        return result
    if hasattr(result, "to_dict") and hasattr(result, "columns"):  # a pandas DataFrame
        return {str(c): result[c].tolist() for c in result.columns}
    return None


def _to_list(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _flatten_single_column(result, single_row: bool) -> list:
    values = _to_list(result)
    if values and isinstance(values[0], list) and all(len(v) == 1 for v in values):
        return [v[0] for v in values]
    # One row in, one row of several values out (predict_proba): that row is the whole prediction.
    if single_row and len(values) == 1 and isinstance(values[0], list):
        return values[0]
    return values


def _as_rows(result) -> list[list]:
    rows = _to_list(result)
    return [r if isinstance(r, list) else [r] for r in rows]


def _assign(msg, field, values, single_row: bool) -> None:
    values = _to_list(values)
    where = f"output.{field.name}"
    if is_repeated(field) and field.type != FD.TYPE_MESSAGE:
        getattr(msg, field.name).extend(_convert(field, v, where) for v in values)
        return
    if field.type == FD.TYPE_MESSAGE:
        raise ModelRejected(f"output field {field.name} is a message; tabular models fill scalar fields only")
    if len(values) != 1:
        raise ModelRejected(
            f"output field {field.name} is a single {type_name(field)} but the model returned {len(values)} "
            "values; declare it repeated to return one value per row")
    setattr(msg, field.name, _convert(field, values[0], where))


def _convert(field, value, where: str):
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, list):
        raise ModelRejected(f"{where}: the model returned a list where one {type_name(field)} was expected")
    if field.type == FD.TYPE_STRING and not isinstance(value, str):
        value = str(value)
    try:
        return scalar_value(field, value, where)
    except BadRequest as exc:
        raise ModelRejected(f"the model's answer does not fit the output message: {exc.message}") from exc


def _shape_error(out_cls, result, n_fields: int) -> ModelRejected:
    shape = getattr(result, "shape", None)
    return ModelRejected(f"the model returned shape {shape or type(result).__name__}, which does not match "
                         f"output message {out_cls.DESCRIPTOR.name} ({n_fields} fields)")


def argmax(result):
    import numpy as np  # as in Table.as_array

    array = np.asarray(result)
    return array.argmax(axis=1) if array.ndim == 2 else (array > 0.5).astype("int64")
