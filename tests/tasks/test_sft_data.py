"""How task=sft reads records: the prompt (through the chat template when the tokenizer has
one) masked out of the labels, the response ending in EOS so the model learns to stop,
padding masked too; truncation counted; what cannot work is a sentence."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tests.conftest import found_or_fetched

from ftlab.errors import ConfigError, DataError
from ftlab.tasks import SFT
from ftlab.tasks.lm_data import IGNORE, Formatter, SFTCollate, SFTExamples

RECORDS = [
    {"prompt": "Ann has 4 cats. How many cats has she?", "response": "4 cats", "answer": "4"},
    {"prompt": "Lea has 7 shells and finds 2 more on the beach. How many now?",
     "response": "She has 9 shells.", "answer": "9"},
]  # fmt: skip


@pytest.fixture(scope="module")
def smollm2_tokenizer(data_dir):
    """SmolLM2-135M-Instruct's own tokenizer (a ChatML template; EOS is ``<|im_end|>``)."""
    from transformers import AutoTokenizer

    from ftlab.backbones.assets import SmolLM2

    return AutoTokenizer.from_pretrained(found_or_fetched(SmolLM2(data_dir)))


@pytest.fixture(scope="module")
def plain_tokenizer(lm_templates):
    """The tiny models' tokenizer: no chat template, EOS ``[SEP]`` standing in for padding."""
    return lm_templates["llama"].tokenizer


def chat_ids(tokenizer, messages, **kwargs) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, **kwargs)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def split_at_prompt(item) -> tuple[list[int], list[int], list[int]]:
    """An example's ids cut where its prompt ends, and its labels."""
    n = len(item["prompt_ids"])
    ids, labels = item["input_ids"].tolist(), item["labels"].tolist()
    return ids[:n], ids[n:], labels


def test_the_chat_template_masks_the_prompt_and_the_response_ends_with_eos(smollm2_tokenizer):
    tok = smollm2_tokenizer
    fmt = Formatter(tok, "auto")
    assert fmt.chat and fmt.eos == tok.convert_tokens_to_ids("<|im_end|>")
    examples = SFTExamples(RECORDS, fmt, max_length=512, train_on_prompt=False)
    assert (examples.truncated, examples.emptied) == (0, 0)
    for record, item in zip(RECORDS, examples):
        user = [{"role": "user", "content": record["prompt"]}]
        prompt, response, labels = split_at_prompt(item)
        assert prompt == chat_ids(tok, user, add_generation_prompt=True)
        assert tok.decode(prompt).endswith("<|im_start|>assistant\n")
        assert tok.decode(response) == record["response"] + "<|im_end|>"
        assert response[-1] == tok.eos_token_id
        # the whole conversation, as the template writes it, up to its end of turn
        whole = chat_ids(tok, [*user, {"role": "assistant", "content": record["response"]}])
        assert whole[: len(prompt) + len(response)] == prompt + response
        assert labels == [IGNORE] * len(prompt) + response
        assert item["answer"] == record["answer"] and item["prompt_text"] == record["prompt"]


def test_a_chat_record_trains_on_its_last_assistant_turn(smollm2_tokenizer):
    tok = smollm2_tokenizer
    chat = [
        {"role": "user", "content": "Hi, can you count?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Then what is 2 + 3?"},
        {"role": "assistant", "content": "5"},
    ]
    (item,) = SFTExamples([{"messages": chat, "answer": "5"}], Formatter(tok), 512, False)
    prompt, response, labels = split_at_prompt(item)
    assert prompt == chat_ids(tok, chat[:-1], add_generation_prompt=True)
    assert tok.decode(response) == "5<|im_end|>"
    assert labels == [IGNORE] * len(prompt) + response  # the earlier answer "Yes." is prompt


def test_without_a_template_the_response_continues_the_prompt_and_ends_with_eos(
    plain_tokenizer, smollm2_tokenizer
):
    """The tiny models' tokenizer has no template (auto: none); SmolLM2's is refused with
    chat_template=false: both continue the prompt's tokens with the response's and EOS."""
    for tok, chat_template in ((plain_tokenizer, "auto"), (smollm2_tokenizer, False)):
        fmt = Formatter(tok, chat_template)
        assert not fmt.chat
        for record, item in zip(RECORDS, SFTExamples(RECORDS, fmt, 512, False)):
            prompt, response, labels = split_at_prompt(item)
            assert prompt == tok(record["prompt"])["input_ids"]
            said = tok(" " + record["response"], add_special_tokens=False)["input_ids"]
            assert response == [*said, tok.eos_token_id]
            assert labels == [IGNORE] * len(prompt) + response


def test_padding_is_masked_and_prompts_are_left_padded_for_generation(plain_tokenizer):
    tok = plain_tokenizer
    examples = SFTExamples(RECORDS, Formatter(tok), 512, False)
    batch = SFTCollate(tok.pad_token_id)([examples[0], examples[1]])
    lengths = [len(item["input_ids"]) for item in examples]
    assert lengths[0] < lengths[1]
    short = lengths[0]
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (lengths[1] - short)
    assert (batch["labels"][0, short:] == IGNORE).all()
    assert batch["labels"][0, :short].tolist() == examples[0]["labels"].tolist()
    prompts = [item["prompt_ids"] for item in examples]
    gen, gen_mask = batch["gen_input_ids"], batch["gen_attention_mask"]
    width = max(len(p) for p in prompts)
    for row, prompt in enumerate(prompts):
        pad = width - len(prompt)
        assert gen_mask[row].tolist() == [0] * pad + [1] * len(prompt)
        assert gen[row, pad:].tolist() == prompt.tolist()
    assert batch["answer"] == ["4", "9"]


def test_train_on_prompt_labels_every_token(plain_tokenizer):
    for item in SFTExamples(RECORDS, Formatter(plain_tokenizer), 512, train_on_prompt=True):
        assert item["labels"].tolist() == item["input_ids"].tolist()


#: a short prompt with a long response, and a long prompt with a short one
UNEVEN = [
    {"prompt": "Count:", "response": " ".join(["one two three four five six seven"] * 3)},
    {"prompt": "Ann has 4 cats and 3 dogs and 2 fish at home. How many pets?", "response": "9"},
]


def test_truncation_cuts_the_response_and_is_counted(plain_tokenizer):
    tok = plain_tokenizer
    fmt = Formatter(tok)
    full = [len(item["input_ids"]) for item in SFTExamples(UNEVEN, fmt, 512, False)]
    prompts = [len(fmt.prompt_ids(r)) for r in UNEVEN]
    # the second fits whole, the first loses its response's end (and its EOS)
    limit = full[1]
    assert prompts[0] + 1 < limit < full[0]
    examples = SFTExamples(UNEVEN, fmt, limit, False)
    assert (examples.truncated, examples.emptied) == (1, 0)
    cut = examples[0]
    assert len(cut["input_ids"]) == limit and cut["input_ids"][-1] != tok.eos_token_id
    assert (cut["labels"][prompts[0] :] != IGNORE).all()
    assert examples[1]["input_ids"][-1] == tok.eos_token_id
    # shorter than the second prompt: its response is cut away entirely, and counted
    limit = prompts[1] - 2
    assert prompts[0] + 1 < limit
    examples = SFTExamples(UNEVEN, fmt, limit, False)
    assert (examples.truncated, examples.emptied) == (2, 1)
    assert (examples[1]["labels"] == IGNORE).all()
    # generation keeps the prompt's end, where the question is
    assert examples[1]["prompt_ids"].tolist() == fmt.prompt_ids(UNEVEN[1])[-limit:]


def test_every_response_cut_away_is_one_sentence(plain_tokenizer):
    fmt = Formatter(plain_tokenizer)
    limit = min(len(fmt.prompt_ids(r)) for r in UNEVEN)
    with pytest.raises(DataError) as error:
        SFTExamples(UNEVEN, fmt, limit, False)
    assert str(error.value) == (
        f"every response is cut away at task.max_length={limit} (prompts are longer); raise "
        "task.max_length or shorten the prompts."
    )


def test_chat_template_true_on_a_tokenizer_without_one_is_a_sentence(plain_tokenizer):
    with pytest.raises(ConfigError) as error:
        Formatter(plain_tokenizer, True)
    said = str(error.value)
    assert said.startswith("task.chat_template=true but the tokenizer of ")
    assert said.endswith(
        "has no chat template; set task.chat_template=auto (use one when there is one) or false."
    )
    source = SimpleNamespace(fields=("prompt", "response", "answer"))
    with pytest.raises(ConfigError, match=r"task.chat_template='yes' is not one of auto, true"):
        SFT(chat_template="yes", forgetting=None).pipeline(SimpleNamespace(source=source))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_new_tokens": 0}, r"task.max_new_tokens=0 generates nothing to score; set it to 1"),
        ({"max_new_tokens": 2.5}, r"task.max_new_tokens=2.5 must be an integer."),
        ({"answer": "digits"}, r"task.answer='digits' is not one of auto, none, number, letter"),
        ({"max_length": 0}, r"task.max_length=0"),
        ({"forgetting": "wiki"}, r"task.forgetting='wiki' is not general text ftlab knows"),
    ],
)
def test_sft_settings_that_cannot_work_are_sentences(settings, message):
    with pytest.raises(ConfigError, match=message):
        SFT(**settings)
