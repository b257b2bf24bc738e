"""task=choice: each option scored by the summed log-probability of its tokens after the
prompt, computed here by hand with a plain forward of the model; the prediction is the
best-scored option, left padding changes nothing, and training sees the gold option's
tokens only. Text classification data scores its class names as label words."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.tasks.conftest import lm_module

from ftlab.errors import ConfigError, DataError
from ftlab.tasks import Choice
from ftlab.tasks.lm_data import IGNORE, ChoiceCollate, ChoiceExamples, Formatter

RECORDS = [
    {"prompt": "Is the sun a star?", "options": ["no", "yes"]},
    {"prompt": "Which of these animals lives in the sea and has eight arms?",
     "options": ["a dog", "an octopus with long arms", "a cat", "a small brown horse"]},
    {"prompt": "Pick one.", "options": ["red", "green apples", "blue"]},
]  # fmt: skip


@pytest.fixture(scope="module")
def scored(lm_templates):
    """A module on the tiny Llama, and each record's options scored by hand: the sum of
    log p(option token | prompt, earlier option tokens) from one unpadded forward of the
    transformers model per option, with each option's token count."""
    backbone = copy.deepcopy(lm_templates["llama"])
    module = lm_module(backbone, task=Choice(forgetting=None))
    fmt = Formatter(backbone.tokenizer)
    hand = []
    for record in RECORDS:
        prompt = fmt.prompt_ids(record)
        scores = []
        for option in record["options"]:
            answer = fmt.option_ids(record, option, prompt)
            with torch.no_grad():
                logits = backbone._lm(input_ids=torch.tensor([prompt + answer])).logits[0]
            logp = logits.double().log_softmax(-1)
            scores.append(
                (
                    sum(float(logp[len(prompt) + j - 1, t]) for j, t in enumerate(answer)),
                    len(answer),
                )
            )
        hand.append(scores)
    return module, fmt, hand


def reported(module, fmt, rows, split="test") -> tuple[float, float]:
    """(accuracy, loss) the task reports for ``rows`` in one batch."""
    task = module.task
    batch = ChoiceCollate(fmt.tokenizer.pad_token_id)(list(ChoiceExamples(rows, fmt, 256, False)))
    with torch.no_grad():
        task.test_step(module, batch) if split == "test" else task.validation_step(module, batch)
    acc, loss = getattr(module, f"{split}_acc"), getattr(module, f"{split}_loss")
    out = float(acc.compute()), float(loss.compute())
    acc.reset()
    loss.reset()
    return out


def with_label(record: dict, label: int) -> dict:
    return {**record, "label": label}


def test_each_option_scores_its_summed_log_probability(scored):
    """The gold option's loss is minus its score over its token count: one record at a
    time, every option in turn gold, equals the hand computation."""
    module, fmt, hand = scored
    for record, scores in zip(RECORDS, hand):
        for k, (score, n) in enumerate(scores):
            _, loss = reported(module, fmt, [with_label(record, k)])
            assert -loss * n == pytest.approx(score, rel=1e-5, abs=1e-4)


def test_the_prediction_is_the_best_scored_option_in_a_left_padded_batch(scored):
    """All records in one batch, left-padded to the longest: with each record's hand argmax
    as gold every prediction is right, with any other option every one is wrong, and the
    loss is the gold options' summed scores over their tokens."""
    module, fmt, hand = scored
    best = [max(range(len(s)), key=lambda k: s[k][0]) for s in hand]
    assert len({len(fmt.prompt_ids(r)) for r in RECORDS}) == len(RECORDS)  # padding happens
    acc, loss = reported(module, fmt, [with_label(r, k) for r, k in zip(RECORDS, best)])
    assert acc == 1.0
    gold = [s[k] for s, k in zip(hand, best)]
    assert loss == pytest.approx(-sum(s for s, _ in gold) / sum(n for _, n in gold), rel=1e-5)
    for shift in (1, 2):  # (a two-option record has one wrong option)
        wrong = [
            with_label(r, (k + 1 + (shift - 1) % (len(r["options"]) - 1)) % len(r["options"]))
            for r, k in zip(RECORDS, best)
        ]
        acc, _ = reported(module, fmt, wrong, split="val")
        assert acc == 0.0


def test_training_sees_the_gold_options_tokens_only(scored):
    module, fmt, hand = scored
    gold = [1, 1, 2]
    rows = [with_label(r, k) for r, k in zip(RECORDS, gold)]
    items = list(ChoiceExamples(rows, fmt, 256, gold_only=True))
    assert [len(item["sequences"]) for item in items] == [1, 1, 1]
    batch = ChoiceCollate(fmt.tokenizer.pad_token_id)(items)
    counts = [n for scores, k in zip(hand, gold) for n in [scores[k][1]]]
    assert (batch["labels"] != IGNORE).sum(1).tolist() == counts
    with torch.no_grad():
        loss = float(module.task.training_step(module, batch))
    total = sum(scores[k][0] for scores, k in zip(hand, gold))
    assert loss == pytest.approx(-total / sum(counts), rel=1e-5)


def test_a_long_prompt_loses_its_start_not_the_option(scored):
    _, fmt, _ = scored
    record = with_label(RECORDS[1], 1)
    prompt = fmt.prompt_ids(record)
    option = fmt.option_ids(record, record["options"][1], prompt)
    (item,) = ChoiceExamples([record], fmt, max_length=len(option) + 3, gold_only=True)
    ((ids, answer_len),) = item["sequences"]
    assert answer_len == len(option) and ids.tolist() == prompt[-3:] + option


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"prompt": "Q?", "options": ["a", "b"], "label": 2},
         "record 0: its label 2 is not among its 2 options ('a', 'b')."),
        ({"prompt": "Q?", "options": ["a", "b"], "label": None},
         "record 0: its label None is not among its 2 options ('a', 'b')."),
        ({"prompt": "Q?", "options": [], "label": 0}, "record 0 has no options to score (task=choice)."),
    ],
)  # fmt: skip
def test_a_record_whose_label_is_not_among_its_options_is_a_sentence(scored, record, message):
    _, fmt, _ = scored
    with pytest.raises(DataError) as error:
        ChoiceExamples([record], fmt, 256, gold_only=False)
    assert str(error.value) == message


# -- text classification data: class names as label words ----------------------------------
CSV = "text,label\n" + "".join(
    f"{text},{label}\n" for text, label in [("a lovely film", "pos"), ("dull and long", "neg")] * 6
)


@pytest.fixture
def reviews(tmp_path):
    """A text classification data module (CSV: texts, labels neg/pos)."""
    from ftlab.data import DataModule
    from ftlab.data.sources import TextCSV

    (tmp_path / "train.csv").write_text(CSV)
    return DataModule(TextCSV(tmp_path / "train.csv"), batch_size=4, val_fraction=0.25)


def test_class_names_are_the_options_of_a_classification_dataset(reviews, lm_templates):
    backbone = copy.deepcopy(lm_templates["llama"])
    task = Choice(forgetting=None)
    module = lm_module(backbone, task=task)
    task.check(backbone, _zero_shot(), reviews)
    reviews.use_task(task)
    reviews.set_preprocessing(backbone.tokenizer)
    reviews.setup("test")
    split = reviews.splits["test"]
    rows = reviews.pipeline.rows(split)
    for row, text, label in zip(rows, split.items, split.labels):
        word = ["neg", "pos"][label]
        assert row == {"prompt": f"{text}\nAnswer:", "options": ["neg", "pos"], "response": word,
                       "answer": word, "label": int(label)}  # fmt: skip
    batch = next(iter(reviews.test_dataloader()))
    examples = len(batch["gold"])
    assert batch["example"].tolist() == [e for e in range(examples) for _ in range(2)]
    assert batch["gold"].tolist() == split.labels[:examples].tolist()
    assert scored_words(batch, backbone.tokenizer) == ["neg", "pos"] * examples
    with torch.no_grad():
        task.test_step(module, batch)
    assert 0.0 <= float(module.test_acc.compute()) <= 1.0


def scored_words(batch: dict, tokenizer) -> list[str]:
    """The tokens each sequence of a choice batch scores, as text."""
    return [
        tokenizer.decode(ids[labels != IGNORE])
        for ids, labels in zip(batch["input_ids"], batch["labels"])
    ]


def _zero_shot():
    from ftlab.methods import ZeroShot

    return ZeroShot()


def test_label_words_rename_classes_and_an_unknown_one_is_refused(reviews, lm_templates):
    backbone = lm_templates["llama"]
    task = Choice(label_words={"pos": "good", "neg": "bad"}, forgetting=None)
    task.check(backbone, _zero_shot(), reviews)
    reviews.use_task(task)
    reviews.set_preprocessing(backbone.tokenizer)
    reviews.setup("test")
    split = reviews.splits["test"]
    for row, label in zip(reviews.pipeline.rows(split), split.labels):
        assert row["options"] == ["bad", "good"] and row["answer"] == ["bad", "good"][label]
    batch = next(iter(reviews.test_dataloader()))
    assert scored_words(batch, backbone.tokenizer) == ["bad", "good"] * len(batch["gold"])
    unknown = Choice(label_words={"positive": "good"}, forgetting=None)
    with pytest.raises(ConfigError) as error:
        unknown.check(backbone, _zero_shot(), reviews)
    assert str(error.value) == (
        "task.label_words names 'positive', not a class of data=text_csv (classes: neg, pos)."
    )
