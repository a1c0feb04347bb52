from django.db import models


class InputKind(models.TextChoices):
    """Where a batch job's input is: an object in the configured S3-compatible store, a file its owner
    uploaded to the portal, or an http(s) URL under a prefix an admin allows."""

    S3 = "s3", "S3 object"
    UPLOAD = "upload", "Uploaded file"
    URL = "url", "URL"


class InputFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON lines"
    PARQUET = "parquet", "Parquet"


class OutputFormat(models.TextChoices):
    """What the predictions and errors files are written as. JSON lines keeps each value's type (a list output
    stays a list, a number a number); CSV writes a list or an object as JSON text in its cell."""

    CSV = "csv", "CSV"
    JSONL = "jsonl", "JSON lines"


# A file name's ending -> its format, when the job does not say.
FORMAT_BY_SUFFIX = {".csv": InputFormat.CSV, ".jsonl": InputFormat.JSONL, ".ndjson": InputFormat.JSONL,
                    ".parquet": InputFormat.PARQUET, ".pq": InputFormat.PARQUET}


class ShardState(models.TextChoices):
    RUNNING = "running"  # its output part may be written, or half written: it is not the job's yet
    DONE = "done"  # its parts are written and counted: a resumed job skips it


class RequestShape(models.TextChoices):
    """How a shard's rows travel to the runner (batch.runner decides from the method's interface)."""

    COLUMNS = "columns", "many rows per request (OIP tensors of n values)"
    PER_ROW = "per_row", "one request per row (the interface takes one row per message)"
