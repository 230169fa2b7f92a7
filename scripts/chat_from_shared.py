"""The shared datasets as conversations, for the chat task (conf/experiment/chat_smollm2_lora.yaml).

    python scripts/chat_from_shared.py [--shared ../shared/data] [--out data/chat] [--train 150] [--eval 30] [--seed 0]

Three jobs, each in one of the three formats the chat task reads, each with a system prompt:
- summarise a DialogSum dialogue (OpenAI `messages`, JSONL): train from dialogsum.train, eval from dialogsum.dev;
- answer a SQuAD question from its context (ShareGPT `conversations`, JSON): train from train-v1.1, eval from
  dev-v1.1, every annotator's answer kept as a reference;
- say a tweet's sentiment and quote the words that carry it (Alpaca, Parquet): train and eval drawn apart
  from tweet_sentiment_extraction/train.csv.
Dialogues over 700 characters and passages over 600 are skipped: short conversations keep a CPU run within
minutes (and a conversation must fit task.max_length whole to be trained on). The files go to a git-ignored folder: third-party data is never committed.
"""

import argparse
import csv
import json
import random
from pathlib import Path

SYSTEM = "You are a concise assistant. Answer in one short sentence or phrase, without preamble."


def dialogsum(path: Path, n: int, rng: random.Random) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if len(r["dialogue"]) <= 700]
    return [{"id": f"dialogsum-{r['fname']}", "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Summarise this dialogue in one sentence.\n\n{r['dialogue']}"},
        {"role": "assistant", "content": r["summary"].strip()}]} for r in rng.sample(rows, min(n, len(rows)))]


def squad(path: Path, n: int, rng: random.Random) -> list[dict]:
    questions = [(p["context"], q) for article in json.loads(path.read_text(encoding="utf-8"))["data"]
                 for p in article["paragraphs"] if len(p["context"]) <= 600 for q in p["qas"] if q["answers"]]
    out = []
    for context, q in rng.sample(questions, min(n, len(questions))):
        answers = list(dict.fromkeys(a["text"].strip() for a in q["answers"]))
        out.append({"id": f"squad-{q['id']}", "references": answers[1:], "conversations": [
            {"from": "system", "value": SYSTEM},
            {"from": "human", "value": f"Answer from the passage.\n\nPassage: {context}\n\nQuestion: {q['question']}"},
            {"from": "gpt", "value": answers[0]}]})
    return out


def tweets(path: Path, n_train: int, n_eval: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["text"].strip() and r["selected_text"].strip()]
    picked = rng.sample(rows, min(n_train + n_eval, len(rows)))
    records = [{"id": f"tweet-{r['textID']}", "system": SYSTEM,
                "instruction": "Give the sentiment of this tweet (positive, negative or neutral) and quote the words that carry it.",
                "input": r["text"].strip(), "output": f"{r['sentiment']}: \"{r['selected_text'].strip()}\""} for r in picked]
    return records[:n_train], records[n_train:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("data/chat"))
    parser.add_argument("--train", type=int, default=150, help="conversations per job for training")
    parser.add_argument("--eval", type=int, default=30, help="conversations per job for evaluation")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import pandas as pd

    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    tweets_train, tweets_eval = tweets(args.shared / "tweet_sentiment_extraction/train.csv", args.train, args.eval, rng)
    files = {
        "train_dialogsum.jsonl": dialogsum(args.shared / "dialogsum/dialogsum.train.jsonl", args.train, rng),
        "eval_dialogsum.jsonl": dialogsum(args.shared / "dialogsum/dialogsum.dev.jsonl", args.eval, rng),
        "train_squad.json": squad(args.shared / "squad/train-v1.1.json", args.train, rng),
        "eval_squad.json": squad(args.shared / "squad/dev-v1.1.json", args.eval, rng),
        "train_tweets.parquet": tweets_train, "eval_tweets.parquet": tweets_eval}
    for name, records in files.items():
        path = args.out / name
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        elif path.suffix == ".json":
            path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
        else:
            pd.DataFrame(records).to_parquet(path, index=False)
        print(f"{path}: {len(records)} conversations")


if __name__ == "__main__":
    main()
