"""Language encoder: MiniLM through ONNX Runtime matches sentence-transformers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sage_common.params import resolve

from sage_encoders.errors import InputError, ModelError
from sage_encoders.language_core import LanguageEncoderCore
from sage_encoders.language_encoder_params import PARAMS, validate
from sage_encoders.minilm import MiniLm


@pytest.fixture
def core(minilm_dir):
    return LanguageEncoderCore.from_params(resolve(PARAMS, {}, validate))


def test_embeddings_are_unit_384_vectors_and_similar_texts_are_closer(core) -> None:
    emb = core.embed(['the dog barks at the mailman', 'a dog is barking at the postman',
                      'quarterly tax revenue rose by four percent'])
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_onnx_embeddings_match_sentence_transformers(core) -> None:
    pytest.importorskip('torch')

    texts = ['hello world', 'Where is the charging station?', 'a' * 300]
    ref = MiniLm(core.model._dir, runtime='torch').embed(texts)
    assert (core.embed(texts) * ref).sum(1).min() > 0.9999


def test_encode_fills_length_preview_and_text(core) -> None:
    rec = core.encode('turn left', 3.5, 9)
    assert (rec.modality, rec.stamp, rec.input_seq, rec.codes) == ('language', 3.5, 9, None)
    assert rec.features == {'length': 9.0, 'tokens': 4.0}  # [CLS] turn left [SEP]
    assert rec.preview_format == 'text' and rec.preview == b'turn left'
    assert rec.text == 'turn left' and rec.halt_reason == 'none'
    assert np.array_equal(rec.embedding, core.embed(['turn left'])[0])


@pytest.mark.parametrize('text', ['', '   ', 'x' * 2001])
def test_empty_or_huge_text_is_rejected(core, text) -> None:
    with pytest.raises(InputError):
        core.encode(text, 0.0, 0)


def test_missing_export_names_the_install_command(tmp_path) -> None:
    with pytest.raises(ModelError, match='sage_encoders.export language'):
        LanguageEncoderCore.from_params(resolve(PARAMS, {'model_dir': str(tmp_path)}, validate))


def test_unload_and_reload(core) -> None:
    core.embed(['a'])
    core.unload()
    assert not core.model.loaded
    core.embed(['b'])
    assert core.model.loads == 2


def test_language_quality_report_covers_int8_and_fp16(minilm_dir) -> None:
    rep = json.loads((minilm_dir / 'language_quality.json').read_text())
    assert rep['fp32']['cosine_min'] > 0.9999
    assert rep['fp16']['cosine_min'] > 0.999
    assert rep['int8']['cosine_min'] > 0.95
