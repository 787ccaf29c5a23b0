"""Image features x_v: encode each item's images, item vector = mean over its images.

MSCRS section 3.2 / docs/data.md: several stills/posters per item go through a
ViT (timm; paper: ``vit_base_patch16_224``, 768-d) and x_v is their mean. Items with no
readable image are marked missing in a boolean mask; their feature row is a zero
PLACEHOLDER that consumers must ignore (the kNN builder does), never a fake vector.
Missing files and corrupt images are counted and reported.

Encoders (both expose ``name``, ``dim``, ``encode_images(list[PIL.Image]) -> Tensor``):

- :class:`TimmImageEncoder`: any timm model by name; weights from a local file
  (``weights_file``: passed as ``pretrained_cfg_overlay=dict(file=...)``; or
  ``checkpoint``: a state dict loaded with ``load_state_dict``) or from the hub
  (``pretrained=True``); timm's own data-config transforms; pooled features
  (``num_classes=0``).
- :class:`HandcraftedImageEncoder` (``handcrafted-colour-hog``): a deterministic,
  NON-LEARNED descriptor for machines where no pretrained image model is reachable.
  It is NOT the paper's ViT and every manifest/report says so. Per image:
  (a) joint HSV colour histogram, 8 hue x 4 saturation x 4 value bins on a 64x64
  thumbnail, square-rooted (Hellinger) and L2-normalised (128-d);
  (b) gradient-orientation histogram (HOG-like): grayscale 64x64, central differences,
  9 unsigned orientation bins (0-180 degrees) weighted by magnitude in 4x4 cells,
  L2-normalised over all cells (144-d);
  (c) an 8x8 grayscale thumbnail, mean-centred and L2-normalised (64-d).
  The three blocks are concatenated and divided by sqrt(3) so the 336-d vector has
  unit norm when every block is non-zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

HANDCRAFTED_NAME = "handcrafted-colour-hog"


def load_rgb(path) -> "Image.Image":
    """Open and fully decode an image as RGB; raises OSError/ValueError for corrupt files."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


# --------------------------------------------------------------------------- handcrafted

def _l2(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def hsv_histogram(image, bins=(8, 4, 4), size: int = 64) -> np.ndarray:
    """Joint HSV histogram, Hellinger-mapped and L2-normalised."""
    hsv = np.asarray(image.resize((size, size)).convert("HSV"), dtype=np.int64)
    idx = [np.minimum(hsv[..., c] * b // 256, b - 1) for c, b in enumerate(bins)]
    flat = (idx[0] * bins[1] + idx[1]) * bins[2] + idx[2]
    hist = np.bincount(flat.ravel(), minlength=int(np.prod(bins))).astype(np.float64)
    return _l2(np.sqrt(hist / hist.sum()))


def orientation_histogram(image, size: int = 64, cells: int = 4, orientations: int = 9) -> np.ndarray:
    """HOG-like histogram of unsigned gradient orientations per cell, L2-normalised."""
    gray = np.asarray(image.resize((size, size)).convert("L"), dtype=np.float64) / 255.0
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    gx[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
    gy[1:-1, :] = gray[2:, :] - gray[:-2, :]
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    bin_idx = np.minimum((angle / (180.0 / orientations)).astype(np.int64), orientations - 1)
    cell = size // cells
    rows = np.arange(size) // cell
    cell_idx = (rows[:, None] * cells + rows[None, :]) * orientations + bin_idx
    hist = np.bincount(cell_idx.ravel(), weights=magnitude.ravel(), minlength=cells * cells * orientations)
    return _l2(hist)


def gray_thumbnail(image, size: int = 8) -> np.ndarray:
    """Mean-centred, L2-normalised grayscale thumbnail."""
    thumb = np.asarray(image.convert("L").resize((size, size)), dtype=np.float64).ravel()
    return _l2(thumb - thumb.mean())


class HandcraftedImageEncoder:
    """Deterministic non-learned descriptor (see module docstring); 336-d."""

    name = HANDCRAFTED_NAME
    learned = False

    def __init__(self):
        self.dim = 128 + 144 + 64

    def encode_image(self, image) -> np.ndarray:
        parts = [hsv_histogram(image), orientation_histogram(image), gray_thumbnail(image)]
        return np.concatenate(parts) / math.sqrt(len(parts))

    def encode_images(self, images: Sequence) -> torch.Tensor:
        if not images:
            return torch.zeros(0, self.dim)
        return torch.from_numpy(np.stack([self.encode_image(img) for img in images])).float()

    def describe(self) -> dict:
        return {"name": self.name, "learned": False, "dim": self.dim,
                "note": "NON-LEARNED descriptor (HSV colour histogram + gradient-orientation histogram + "
                        "grayscale thumbnail); not the paper's ViT"}


# --------------------------------------------------------------------------- timm

class TimmImageEncoder:
    """Pooled features of a timm model, with timm's eval transforms."""

    learned = True

    def __init__(self, model_name: str = "vit_base_patch16_224", weights_file: Optional[str] = None,
                 checkpoint: Optional[str] = None, pretrained: bool = False, model_kwargs: Optional[dict] = None,
                 data_config: Optional[dict] = None, batch_size: int = 32, device: Optional[str] = None):
        import timm
        from timm.data import create_transform, resolve_model_data_config

        if weights_file and checkpoint:
            raise ValueError("give weights_file OR checkpoint, not both")
        kwargs = dict(model_kwargs or {})
        if weights_file:
            if not Path(weights_file).is_file():
                raise FileNotFoundError(f"timm weights file not found: {weights_file}")
            kwargs["pretrained_cfg_overlay"] = dict(file=str(weights_file))
        self.model = timm.create_model(model_name, pretrained=bool(pretrained or weights_file), num_classes=0,
                                       **kwargs)
        self.load_report = {}
        if checkpoint:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
            result = self.model.load_state_dict(state, strict=False)
            if result.missing_keys:
                raise ValueError(f"{checkpoint}: checkpoint lacks {len(result.missing_keys)} weights of "
                                 f"{model_name}, e.g. {result.missing_keys[:3]}")
            self.load_report = {"unexpected_keys": list(result.unexpected_keys)}
        if not (pretrained or weights_file or checkpoint):
            raise ValueError(f"timm model {model_name}: no weights given (weights_file, checkpoint or "
                             "pretrained=True); a randomly initialised encoder is not a feature extractor")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval()
        config = resolve_model_data_config(self.model)
        img_size = getattr(getattr(self.model, "patch_embed", None), "img_size", None)
        if img_size is not None and tuple(config["input_size"][1:]) != tuple(img_size):
            config["input_size"] = (3, *img_size)  # model built at a non-default resolution
        config.update(data_config or {})
        self.data_config = config
        self.transform = create_transform(**config, is_training=False)
        self.batch_size = int(batch_size)
        self.name = f"timm:{model_name}"
        self.model_name = model_name
        self.weights = str(weights_file or checkpoint or "hub")
        self.dim = int(self.model.num_features)

    @torch.no_grad()
    def encode_images(self, images: Sequence) -> torch.Tensor:
        if not images:
            return torch.zeros(0, self.dim)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([self.transform(img) for img in images[start:start + self.batch_size]])
            out.append(self.model(batch.to(self.device)).float().cpu())
        return torch.cat(out)

    def describe(self) -> dict:
        return {"name": self.name, "learned": True, "dim": self.dim, "weights": self.weights,
                "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()}}


def get_image_encoder(name: str, **options):
    """``handcrafted-colour-hog`` or a timm model name (optionally prefixed ``timm:``)."""
    if name == HANDCRAFTED_NAME:
        return HandcraftedImageEncoder()
    return TimmImageEncoder(name[len("timm:"):] if name.startswith("timm:") else name, **options)


# --------------------------------------------------------------------------- items

@dataclass
class ImageFeatures:
    """Per-item image vectors in catalogue order plus the missing mask and a report."""

    item_ids: list
    features: torch.Tensor
    missing_mask: torch.Tensor
    report: dict = field(default_factory=dict)


def build_image_manifest(catalogue) -> dict:
    """``{item_id: [image paths]}`` for every catalogue item (empty list when none)."""
    return {item.item_id: list(item.image_paths) for item in catalogue}


def encode_item_images(manifest: dict, encoder, item_ids: Optional[Sequence[int]] = None,
                       items_per_batch: int = 64, show_progress: bool = True) -> ImageFeatures:
    """Mean image vector per item; items with no readable image are flagged missing.

    Order of rows = ``item_ids`` (default: sorted manifest keys).
    """
    from tqdm.auto import tqdm

    item_ids = sorted(manifest) if item_ids is None else list(item_ids)
    features = torch.zeros(len(item_ids), encoder.dim)
    missing = torch.ones(len(item_ids), dtype=torch.bool)
    counts = {"images_listed": 0, "images_encoded": 0, "images_missing_file": 0, "images_corrupt": 0}
    problems = []
    for start in tqdm(range(0, len(item_ids), items_per_batch), desc=f"encode images [{encoder.name}]",
                      disable=not show_progress):
        rows, images = [], []
        for row in range(start, min(start + items_per_batch, len(item_ids))):
            for path in manifest.get(item_ids[row], []):
                counts["images_listed"] += 1
                if not Path(path).is_file():
                    counts["images_missing_file"] += 1
                    problems.append(f"missing file: {path}")
                    continue
                try:
                    images.append(load_rgb(path))
                except (OSError, ValueError, SyntaxError) as err:
                    counts["images_corrupt"] += 1
                    problems.append(f"corrupt image {path}: {type(err).__name__}: {err}")
                    continue
                rows.append(row)
        if not images:
            continue
        vectors = encoder.encode_images(images)
        counts["images_encoded"] += len(images)
        rows_t = torch.tensor(rows)
        sums = torch.zeros(len(item_ids), encoder.dim).index_add_(0, rows_t, vectors)
        n_per_row = torch.bincount(rows_t, minlength=len(item_ids))
        touched = n_per_row > 0
        features[touched] = sums[touched] / n_per_row[touched].unsqueeze(1)
        missing[touched] = False
    report = {**counts, "items": len(item_ids), "items_with_images": int((~missing).sum()),
              "items_missing": int(missing.sum()), "encoder": encoder.describe(), "problems_sample": problems[:20]}
    return ImageFeatures(item_ids=item_ids, features=features, missing_mask=missing, report=report)
