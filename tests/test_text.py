import h5py
import numpy as np
import pytest

from thne.data.manifest import Clip, write_manifest
from thne.text.encoder import OFFLINE_MINILM, load_encoder, load_tokenizer, resolve_encoder
from thne.text.tokenize import tokenize_manifest


def clips(texts):
    return [Clip(f"v_{i}", "v", 0.0, 1.0, "train", 0.0, t, "v.mp4") for i, t in enumerate(texts)]


def test_tokenize_manifest(tmp_path):
    texts = ["anyhow it was really good", "it was " + "very " * 80 + "bad"]
    write_manifest(tmp_path / "m.tsv", clips(texts))
    cut = tokenize_manifest(
        tmp_path / "m.tsv", tmp_path / "text.h5", encoder=OFFLINE_MINILM, max_length=50
    )
    assert cut == 1
    with h5py.File(tmp_path / "text.h5") as h5:
        assert [c.decode() for c in h5["clip_ids"][()]] == ["v_0", "v_1"]
        ids, mask = h5["input_ids"][()], h5["attention_mask"][()]
        assert ids.dtype == np.int32 and ids.shape == (2, 50)
        assert mask.dtype == np.int8 and mask.shape == (2, 50)
        assert h5.attrs["tokenizer"] == OFFLINE_MINILM and h5.attrs["max_length"] == 50
    tok = load_tokenizer(OFFLINE_MINILM)
    assert ids[0, 0] == tok.cls_token_id
    assert mask[0].sum() == len(tok("anyhow it was really good")["input_ids"])
    assert mask[1].all() and ids[1, -1] == tok.sep_token_id  # cut, but still closed by [SEP]
    assert tok.decode(ids[0][mask[0] == 1], skip_special_tokens=True) == texts[0]


def test_offline_encoder_has_real_weights():
    model, hidden = load_encoder(OFFLINE_MINILM)
    assert hidden == 384
    tok = load_tokenizer(OFFLINE_MINILM)
    import torch

    with torch.no_grad():
        enc = tok(
            ["a great movie", "a wonderful film", "tax forms are due"],
            return_tensors="pt",
            padding=True,
        )
        out = model(**enc).last_hidden_state.mean(1)
    cos = torch.nn.functional.cosine_similarity
    # Trained weights put the two film sentences closer than the unrelated one.
    assert cos(out[0], out[1], dim=0) > cos(out[0], out[2], dim=0) + 0.1


def test_unknown_encoder_fails_offline_with_its_name(tmp_path):
    with pytest.raises(RuntimeError, match="cannot load tokenizer"):
        load_tokenizer(str(tmp_path / "no-such-model"))
    assert resolve_encoder("bert-base-uncased") == "bert-base-uncased"
