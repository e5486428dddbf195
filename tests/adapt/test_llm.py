"""The local transformers chat model as an LLM: a prompt in, the generated reply out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from qwen3_rag.adapt import TransformersChatLLM, synthesize
from qwen3_rag.adapt.corpus import Passage
from tests.models import load_reference

TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory: pytest.TempPathFactory, tiny_reranker_dir: Path) -> Path:
    """The tiny random causal LM, with a chat template: a chat model that talks nonsense."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("chat")
    shutil.copytree(tiny_reranker_dir, folder, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = TEMPLATE
    tok.save_pretrained(folder)
    return folder


def test_reply_is_the_greedy_continuation_of_the_chat_prompt(chat_dir: Path) -> None:
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    llm = TransformersChatLLM(str(chat_dir), max_new_tokens=6, device="cpu")
    reply = llm("Write a query.")
    tok = AutoTokenizer.from_pretrained(chat_dir)
    prompt = "<|im_start|>user\nWrite a query.<|im_end|>\n<|im_start|>assistant\n"
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    model = load_reference(Qwen3ForCausalLM, chat_dir)
    out = model.generate(ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert reply == tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert llm("Write a query.") == reply  # greedy: reproducible


def test_nonsense_replies_are_counted_not_fatal(chat_dir: Path, tmp_path: Path) -> None:
    llm = TransformersChatLLM(str(chat_dir), max_new_tokens=4, device="cpu")
    passages = [Passage(f"p{i}", f"passage {i}", "f") for i in range(2)]
    report = synthesize(passages, llm, tmp_path / "q.jsonl", retries=1)
    assert (report.made, report.failed, report.llm_calls) == (0, 2, 4)
    assert sum(report.failures.values()) == 4


def test_a_model_without_chat_template_is_refused(tiny_reranker_dir: Path) -> None:
    with pytest.raises(ValueError, match="no chat template"):
        TransformersChatLLM(str(tiny_reranker_dir), device="cpu")("hi")
    with pytest.raises(ValueError, match="temperature"):
        TransformersChatLLM(str(tiny_reranker_dir), temperature=-1)
