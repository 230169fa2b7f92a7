"""`ftpipe-predict`: answer questions with a tuned (or any) model directory, outside the pipeline.

    ftpipe-predict --model models/tuned --context "Paris is the capital of France." --question "What is the capital of France?"
    ftpipe-predict --model models/tuned --file questions.json     # SQuAD JSON, or JSONL/CSV with context,question

The task settings (windows, n-best, ...) come from the `task` section of params.yaml; records go
through the same plug-in code as the pipeline: clean, tokenize, predict.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ftpipe import offline  # noqa: F401  (before transformers/datasets)
from ftpipe.errors import FtpipeError


def predict(model_dir: Path, records: list[dict], params_path: Path = Path("params.yaml"),
            base_dir: Path = Path("models/base"), trust_remote_code: bool = False) -> list[dict]:
    import datasets

    from ftpipe.config import DataConfig, EvaluateConfig, load_params
    from ftpipe.methods import load_tuned
    from ftpipe.models.loading import load_tokenizer
    from ftpipe.tasks import get_task

    task = get_task(load_params("task", path=params_path).task)
    rows = []
    for i, record in enumerate(records, start=1):
        row = task.clean({task.cfg.answers_field: [], **record}, DataConfig())  # SQuAD v1 refuses a record without the key
        row["id"] = row.get("id") or f"input-{i}"
        rows.append(row)
    tokenizer = load_tokenizer(model_dir, task, trust_remote_code=trust_remote_code)
    model = load_tuned(task, model_dir, base_dir, tokenizer, trust_remote_code)
    examples = datasets.Dataset.from_list(rows)
    features = task.tokenize(examples, tokenizer, "eval", 1, 1000)
    return task.predict(model, tokenizer, features, examples, EvaluateConfig())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a model directory (models/tuned)")
    parser.add_argument("--base", type=Path, default=Path("models/base"), help="the base an adapter was trained on (default: models/base)")
    # Trust is the user's call on this command line, never a setting read from the model folder.
    parser.add_argument("--trust-remote-code", action="store_true", help="run Python code shipped with the model")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params.yaml with the task section")
    parser.add_argument("--file", type=Path, help="a file of records (any format the task reads)")
    parser.add_argument("--context")
    parser.add_argument("--question")
    parser.add_argument("--json", action="store_true", help="print one JSON row per record")
    args = parser.parse_args(argv)
    try:
        # Checked here, before transformers would take a missing folder for a Hub id or unpickle a .bin.
        if not args.model.is_dir():
            raise FtpipeError(f"{args.model}: model directory not found")
        if not any(args.model.glob("*.safetensors")):
            raise FtpipeError(f"{args.model}: has no *.safetensors weights (ftpipe loads weights only from safetensors)")
        if args.file:
            from ftpipe.config import load_params
            from ftpipe.tasks import get_task

            task = get_task(load_params("task", path=args.params).task)
            records = [record for _, record in task.read(args.file, {})]
        elif args.context and args.question:
            records = [{"context": args.context, "question": args.question}]
        else:
            parser.error("give --file, or --context and --question")
        for row in predict(args.model, records, args.params, args.base, args.trust_remote_code):
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
            else:
                confidence = row.get("probability", row["score"])
                span = f" [chars {row['start']}:{row['start'] + len(row['prediction'])}]" if row.get("start", -1) >= 0 else ""
                print(f"{row['id']}\t{row['prediction'] or '(no answer)'}{span}\tscore={confidence:.3f}")
    except FtpipeError as err:
        _fail(str(err))
    except OSError as err:  # a missing input file, or a model folder transformers cannot read
        _fail(f"{err.filename}: {err.strerror or err}" if err.filename else f"{args.model}: {err}")
    except ValueError as err:  # transformers refusing a model folder, e.g. one that ships code (--trust-remote-code)
        _fail(f"{args.model}: {err}")


def _fail(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
