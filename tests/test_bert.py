"""thne's own BERT encoder and tokenizer (thne.text.bert, thne.text.loader) against
transformers' BertModel and AutoTokenizer (thne.text.encoder, which the tokenization stage
uses), which they replace in training and scoring jobs: the same numbers, the same parameter
names, the same token ids."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertConfig, BertForMaskedLM, RobertaConfig

from conftest import REPO
from thne.text.bert import Bert
from thne.text.encoder import OFFLINE_MINILM, load_tokenizer, resolve_encoder
from thne.text.loader import (
    load_text_encoder,
    load_text_tokenizer,
    run_encoder,
    run_encoder_files,
)

# Cased, accented, CJK, punctuation, an empty transcript and one longer than max_length.
ODD_TEXTS = [
    "Hello WORLD, this is GREAT!!",
    "Ça va très bien… naïve café, 你好",
    "",
    "um i i thought it was ok " * 20,
]


def demo_texts() -> list[str]:
    return list(pd.read_csv(REPO / "resources/demo/label.csv").text.astype(str)) + ODD_TEXTS


@pytest.fixture(scope="module")
def minilm():
    ours, width = load_text_encoder(OFFLINE_MINILM)
    theirs = AutoModel.from_pretrained(resolve_encoder(OFFLINE_MINILM), local_files_only=True)
    return ours, theirs, width


def batch(texts: list[str], length: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    enc = load_text_tokenizer(OFFLINE_MINILM).encode(texts, length)
    return torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"])


def test_tokens_are_transformers_tokens():
    texts = demo_texts()
    ours = load_text_tokenizer(OFFLINE_MINILM)
    # What `thne text` writes into text.h5.
    theirs = load_tokenizer(OFFLINE_MINILM)
    for length in (8, 50):
        enc = ours.encode(texts, length)
        ref = theirs(
            texts, max_length=length, padding="max_length", truncation=True, return_tensors="np"
        )
        assert np.array_equal(enc["input_ids"], ref["input_ids"])
        assert np.array_equal(enc["attention_mask"], ref["attention_mask"])
    assert ours.lengths(texts) == [len(i) for i in theirs(texts, truncation=False)["input_ids"]]


def test_shipped_minilm_computes_what_transformers_computes(minilm):
    """Bit for bit: in eval mode, in training mode with dropout (same seed), its gradients,
    and under bf16 autocast. Same parameter and state-dict names, so a trained run's weights
    load into either."""
    ours, theirs, width = minilm
    assert isinstance(ours, Bert) and width == 384
    # Loading draws nothing from the global generator, as transformers' loading does not:
    # what a run builds after its encoder starts from the same numbers.
    torch.manual_seed(0)
    load_text_encoder(OFFLINE_MINILM)
    after_ours = torch.rand(4)
    torch.manual_seed(0)
    AutoModel.from_pretrained(resolve_encoder(OFFLINE_MINILM), local_files_only=True)
    assert torch.equal(after_ours, torch.rand(4))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ids, mask = batch(ODD_TEXTS)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        a, b = ours(ids, mask), theirs(input_ids=ids, attention_mask=mask)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.pooler_output, b.pooler_output)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ours(ids, mask), theirs(input_ids=ids, attention_mask=mask)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)

    ours.train(), theirs.train()
    torch.manual_seed(3)
    a = ours(ids, mask).last_hidden_state[:, 0]
    torch.manual_seed(3)
    b = theirs(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    assert torch.equal(a, b)
    a.square().sum().backward()
    b.square().sum().backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if p.grad is not None or grads[name].grad is not None:
            assert torch.equal(p.grad, grads[name].grad), name


def test_a_masked_lm_checkpoint_without_pooler_loads_as_transformers_loads_it(tmp_path):
    """``bert.``-prefixed keys and a task head (what bert-base-uncased's hub checkpoint holds),
    no pooler: the encoder's weights are the checkpoint's, the pooler BERT's initial one."""
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=40, hidden_act="gelu_new",
    )  # fmt: skip
    BertForMaskedLM(cfg).save_pretrained(tmp_path)
    ours, width = load_text_encoder(str(tmp_path))
    theirs = AutoModel.from_pretrained(tmp_path, local_files_only=True)
    assert isinstance(ours, Bert) and width == 32
    ids = torch.randint(1, 99, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert torch.allclose(
            ours(ids, mask).last_hidden_state,
            theirs(input_ids=ids, attention_mask=mask).last_hidden_state,
            atol=1e-6,
        )


def test_other_architectures_and_old_runs_still_load(tmp_path, minilm):
    """A RoBERTa folder goes through transformers; the encoder files an older thne saved
    (transformers' save_pretrained output) rebuild the same tokenizer and a BERT of the same
    shape."""
    roberta = RobertaConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40,
    )  # fmt: skip
    roberta.save_pretrained(tmp_path / "roberta")
    model, width = load_text_encoder(str(tmp_path / "roberta"), pretrained=False)
    assert not isinstance(model, Bert) and width == 16

    old = tmp_path / "old"
    theirs = AutoTokenizer.from_pretrained(resolve_encoder(OFFLINE_MINILM), local_files_only=True)
    theirs.save_pretrained(old)
    minilm[1].config.save_pretrained(old)
    files = {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()}
    tokenizer, encoder, width = run_encoder(files)
    new_tokenizer, _, _ = run_encoder(run_encoder_files(OFFLINE_MINILM))
    texts = demo_texts()
    assert np.array_equal(
        tokenizer.encode(texts, 50)["input_ids"], new_tokenizer.encode(texts, 50)["input_ids"]
    )
    assert isinstance(encoder, Bert) and width == 384
    encoder.load_state_dict(minilm[0].state_dict())


def test_training_and_scoring_do_not_import_transformers():
    """What thne.text.loader is for: a training or scoring job starts without transformers'
    import (about 2.5 CPU-seconds)."""
    code = (
        "import sys\n"
        "from thne.model.build import build_model\n"
        "from thne.runs import load_run\n"
        "from thne.text.loader import load_text_encoder, run_encoder, run_encoder_files\n"
        "load_text_encoder('all-MiniLM-L6-v2')\n"
        "run_encoder(run_encoder_files('all-MiniLM-L6-v2'))\n"
        "import thne.stages.train, thne.stages.predict\n"
        "assert not any(m.split('.')[0] == 'transformers' for m in sys.modules), 'imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
