"""`ftpipe-predict`: run a tuned (or any) model directory on new inputs, outside the pipeline.

    ftpipe-predict --model models/tuned --text "Great food, slow service."          # classification
    ftpipe-predict --model models/tuned --file reviews.csv --out predicted.csv      # CSV/JSONL/JSON/Parquet in, CSV/JSONL out
    cat reviews.txt | ftpipe-predict --model models/tuned --file -                  # stdin: one text per line, or JSONL
    ftpipe-predict --model models/tuned --context "Paris is the capital of France." --question "What is the capital of France?"
    ftpipe-predict --model models/tuned --file dialogues.jsonl --json               # summarization
    ftpipe-predict --model models/tuned --chat --system "Answer briefly."          # a conversation, a turn a line

Classification needs only the text field (no label) and gives the predicted class with the
probability of every class; QA gives the answer span; summarization generates with the
configured settings (evaluate.generation). The task settings (field names, labels, windows,
prompt) come from the `task` section of params.yaml; inputs go through the pipeline's own
cleaning and tokenization and the same batched, length-sorted inference loop as evaluation.
A bad record stops with one line naming the file, the record and the field.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from ftpipe.core import offline  # noqa: F401  (before transformers/datasets)
from ftpipe.core.errors import DataError, FtpipeError, fail
from ftpipe.core.io import decoded_lines
from ftpipe.tools.converse import check_chat, converse

STDIN = "<stdin>"


def predict(model_dir: Path, records: list[dict], params_path: Path = Path("params.yaml"),
            base_dir: Path = Path("models/base"), trust_remote_code: bool = False, source: str = "input",
            precision: str | None = None) -> list[dict]:
    """One output row per record. Trust for remote code comes only from the caller (the command-line flag);
    `precision` (default: evaluate.precision) as in evaluation, int8 included."""
    from ftpipe.params import load_params
    from ftpipe.tasks import get_task

    rows = clean(get_task(load_params("task", path=params_path).task), records, source)  # a bad record before the model loads
    return predictor(model_dir, params_path, base_dir, trust_remote_code, precision)(rows)


def predictor(model_dir: Path, params_path: Path = Path("params.yaml"), base_dir: Path = Path("models/base"),
              trust_remote_code: bool = False, precision: str | None = None):
    """The model loaded once, as a function from clean rows (`clean`) to output rows: for a file, or for each
    turn of a conversation (--chat)."""
    import datasets
    import torch

    from ftpipe.params import load_params
    from ftpipe.methods import load_tuned
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.precision import autocast, for_inference
    from ftpipe.precision import resolve as resolve_precision
    from ftpipe.tasks import get_task

    params = load_params("task", "evaluate", path=params_path)
    task = get_task(params.task)
    if not Path(model_dir).is_dir():  # else transformers would look for a Hub repo of that name
        raise DataError(model_dir, "no such model folder")
    if not any((Path(model_dir) / name).is_file() for name in TOKENIZER_FILES):  # transformers would build an empty one:
        raise DataError(model_dir, f"has no tokenizer ({', '.join(TOKENIZER_FILES[:2])}): copy the whole model folder")  # all [UNK]
    tokenizer = load_tokenizer(model_dir, task, trust_remote_code=trust_remote_code)
    model = load_tuned(task, model_dir, base_dir, tokenizer, trust_remote_code)
    if torch.cuda.is_available():
        model.to("cuda")
    precision = resolve_precision(precision or params.evaluate.precision)
    model = for_inference(model, precision, decodes=task.decodes)

    def answer(rows: list[dict]) -> list[dict]:
        examples = datasets.Dataset.from_list(rows)
        features = task.tokenize(examples, tokenizer, "eval", None, 1000)  # as evaluation tokenizes (windows, prompt)
        with autocast(precision):
            return task.infer(model, tokenizer, features, examples, params.evaluate)

    return answer


def clean(task, records: list[dict], source: str) -> list[dict]:
    """Each record through the task's own cleaning; what prediction does not need is filled in first."""
    from ftpipe.core.config import DataConfig
    from ftpipe.tasks.base import RecordError

    rows = []
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(source, f"expected an object, got {type(record).__name__}", record=number)
        try:
            row = task.clean(task.prediction_record(record), DataConfig())
        except RecordError as err:
            raise DataError(source, str(err), record=number, field=err.field) from None
        row["id"] = row.get("id") or f"input-{number}"
        rows.append(row)
    if not rows:
        raise DataError(source, "no records")
    return rows


# --- input and output --------------------------------------------------------------------------
CLI_INPUTS = ("context", "question")  # flags a task may read (Task.cli_inputs): a record in one command line


def read_inputs(args, task) -> tuple[list[dict], str]:
    if args.file and str(args.file) != "-":
        return [record for _, record in task.read(args.file, {})], str(args.file)
    flags = {name: getattr(args, name) for name in CLI_INPUTS if getattr(args, name) is not None}
    if args.file or (not args.text and not flags and not sys.stdin.isatty()):
        return read_stdin(sys.stdin.buffer.read(), task), STDIN
    if args.text:
        if task.cli_field is None:
            raise DataError("--text", f"a {task.cfg.name} record has several fields: give --file{_or_flags(task)}")
        return [{task.cli_field: text} for text in args.text], "--text"
    if flags:  # the task's own one-record inputs (cli_inputs): QA's context and question
        where = "/".join(f"--{name}" for name in flags)
        if set(flags) != set(task.cli_inputs):
            raise DataError(where, f"a {task.cfg.type} task takes " + (" and ".join(f"--{n}" for n in task.cli_inputs)
                                                                     if task.cli_inputs else "--text or --file"))
        return [{task.cli_inputs[name]: value for name, value in flags.items()}], where
    raise DataError("input", f"give --file (or - for stdin){', --text' if task.cli_field else ''}{_or_flags(task)}")


def _or_flags(task) -> str:
    return f", or {' and '.join(f'--{n}' for n in task.cli_inputs)}" if task.cli_inputs else ""


def read_stdin(data: bytes, task) -> list[dict]:
    """JSONL when the first line is an object; otherwise one text (or dialogue) per line.

    Bytes, decoded line by line: a byte that is not UTF-8 is the input's error, named with its line (a
    text decoded leniently carried it to the tokenizer, whose error blamed the model folder)."""
    lines = [(number, line) for number, line in enumerate(decoded_lines(data.splitlines(), STDIN, first_record=1), start=1)
             if line.strip()]
    if lines and lines[0][1].lstrip().startswith("{"):
        records = []
        for number, line in lines:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(STDIN, f"malformed JSON at column {err.colno}: {err.msg}", record=number) from None
        return records
    if task.cli_field is None:
        raise DataError(STDIN, f"{task.cfg.name} input on stdin must be JSONL, one record per line")
    return [task.line_record(line) for _, line in lines]


def flat(row: dict) -> dict:
    """A CSV row: nested dicts as `key:name` columns (class probabilities), lists as JSON."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update({f"{key}:{name}": v for name, v in value.items()})
        else:
            out[key] = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else value
    return out


def render(rows: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if fmt == "csv":
        flats = [flat(r) for r in rows]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for r in flats for k in r)))
        writer.writeheader()
        writer.writerows(flats)
        return buffer.getvalue()
    lines = []
    for row in rows:  # for a terminal: id, prediction, confidence
        span = f" [chars {row['start']}:{row['start'] + len(row['prediction'])}]" if row.get("start", -1) >= 0 and row["prediction"] else ""
        confidence = f"\tscore={row['probability']:.3f}" if "probability" in row else ""
        prediction = " ".join(str(row["prediction"]).split()) or "(no answer)"
        lines.append(f"{row['id']}\t{prediction}{span}{confidence}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ftpipe-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model directory (models/tuned, models/export, ...)")
    parser.add_argument("--base", type=Path, default=Path("models/base"), help="the base an adapter was trained on (default: models/base)")
    # Trust is the user's call on this command line, never a setting read from the model folder or params.
    parser.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with the task and evaluate sections")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16", "int8"),
                        help="default: evaluate.precision; int8: dynamic quantization, on a CPU")
    parser.add_argument("--file", type=Path, help="records in CSV, JSON, JSONL or Parquet (QA: also SQuAD JSON); - reads stdin")
    parser.add_argument("--text", action="append", help="a text to classify or a dialogue to summarize (repeatable)")
    parser.add_argument("--context", help="QA: the passage")
    parser.add_argument("--question", help="QA: the question")
    parser.add_argument("--chat", action="store_true", help="converse: a user turn a line (or --file: answer each conversation)")
    parser.add_argument("--system", help="--chat: the system prompt of a conversation that has none")
    parser.add_argument("--out", type=Path, help="write the predictions here: .csv or .jsonl (default: stdout)")
    parser.add_argument("--json", action="store_true", help="print one JSON row per record (JSONL) instead of a table")
    parser.add_argument("--csv", action="store_true", help="print CSV")
    args = parser.parse_args(argv)
    try:
        # Checked here, before transformers would take a missing folder for a Hub id or unpickle a .bin.
        if not args.model.is_dir():
            raise FtpipeError(f"{args.model}: model directory not found")
        check_model_folder(args.model)
        from ftpipe.params import load_params
        from ftpipe.tasks import get_task

        task = get_task(load_params("task", path=args.params).task)
        check_head(args.model, task, args.params)
        if args.chat or args.system is not None:
            check_chat(args, task)
            if not args.file:  # a conversation on the terminal (or piped in), a user turn a line
                return converse(predictor(args.model, args.params, args.base, args.trust_remote_code, args.precision), task, args.system)
        records, source = read_inputs(args, task)
        if args.chat:
            records = [task.chat_record(record, args.system) for record in records]
        if args.out and args.out.suffix.lower() not in (".csv", ".jsonl"):
            raise DataError(args.out, "write predictions to a .csv or .jsonl file")
        rows = predict(args.model, records, args.params, args.base, args.trust_remote_code, source, args.precision)
        if args.out:
            args.out.write_text(render(rows, args.out.suffix.lower().lstrip(".")))
            print(f"{len(rows)} predictions in {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(render(rows, "jsonl" if args.json else "csv" if args.csv else "table"))
    except FtpipeError as err:
        fail(str(err))
    except OSError as err:  # a missing input file, or a model folder transformers cannot read
        fail(f"{err.filename}: {err.strerror or err}" if err.filename else f"{args.model}: {err}")
    except ValueError as err:  # transformers refusing a model folder, e.g. one that ships code (--trust-remote-code)
        fail(f"{args.model}: {err}")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.txt", "vocab.json", "spiece.model")


def check_model_folder(model_dir: Path) -> None:
    """The weights ftpipe-predict will open in `model_dir` are safetensors: the file the loader opens, not any
    file beside it (an adapter's adapter_model.bin would reach torch.load)."""
    if (model_dir / "adapter_config.json").exists():  # peft opens adapter_model.safetensors, else adapter_model.bin
        weights = ["adapter_model.safetensors"]
    elif (model_dir / "config.json").exists():  # transformers opens model.safetensors (or its shards), else a .bin
        weights = ["model.safetensors", "model.safetensors.index.json"]
    else:  # a method's own format (features: its head), read only with safetensors' loader
        weights = [path.name for path in model_dir.glob("*.safetensors")] or ["*.safetensors"]
    if not any((model_dir / name).is_file() for name in weights):
        raise FtpipeError(f"{model_dir}: has no *.safetensors weights ({weights[0]}; ftpipe loads weights only from safetensors)")


def check_head(model_dir: Path, task, params_path: Path) -> None:
    """A model ftpipe tuned (its train record beside it) has the task's head: a question-answering model run
    with classification params would predict from a freshly drawn classification head (or stop on a shape
    error deep in transformers). Any other folder (a base model: evaluate@base draws its head too) is taken as it is."""
    from ftpipe.core.records import TrainRecord

    if not TrainRecord.exists(model_dir):
        return
    head = task.auto_class.removeprefix("AutoModel")  # e.g. ForSequenceClassification
    config, adapter = model_dir / "config.json", model_dir / "adapter_config.json"
    if adapter.exists():
        peft_type = json.loads(adapter.read_text()).get("task_type")
        if peft_type and task.peft_task_type and peft_type != task.peft_task_type:
            raise FtpipeError(f"{model_dir}: an adapter for {peft_type}, but {params_path} says task.type {task.cfg.type} "
                              f"({task.peft_task_type}): give the params it was trained with (--params)")
    elif config.exists():
        architectures = json.loads(config.read_text()).get("architectures") or []
        if architectures and head and not any(str(name).endswith(head) for name in architectures):
            raise FtpipeError(f"{model_dir}: a {architectures[0]} model, but {params_path} says task.type {task.cfg.type} "
                              f"(a ...{head} head): give the params it was trained with (--params)")


if __name__ == "__main__":
    main()
