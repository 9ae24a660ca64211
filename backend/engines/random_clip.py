"""Build and save a random-weight CLIP offline (tests, benchmarks, smoke runs).

The tokenizer is a real ``CLIPTokenizer`` with a byte-level vocabulary made in code and no
merges (deterministic), so everything loads back through ``from_pretrained`` like a hub
model, with no network. ``size="tiny"`` builds in about a second; ``size="b32"`` has the
ViT-B/32 architecture (random weights: fine for speed, meaningless for accuracy).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _byte_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def build_random_clip(out_dir: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random CLIP (model, tokenizer, image processor) to ``out_dir`` and return it."""
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.models.clip.image_processing_clip import CLIPImageProcessor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = _byte_vocab()
    try:
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[])  # transformers 5
    except TypeError:  # transformers 4.x reads files
        import json

        (out / "vocab.json").write_text(json.dumps(vocab))
        (out / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(vocab_file=str(out / "vocab.json"), merges_file=str(out / "merges.txt"))
    special = dict(bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                   pad_token_id=vocab["<|endoftext|>"])

    if size == "tiny":
        text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, max_position_embeddings=77, **special)
        vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      image_size=32, patch_size=8)
        projection, image_px = 32, 32
    elif size == "b32":
        text = dict(vocab_size=len(vocab), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                    num_attention_heads=8, max_position_embeddings=77, **special)
        vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      image_size=224, patch_size=32)
        projection, image_px = 512, 224
    else:
        raise ValueError(f"unknown size {size!r}: use 'tiny' or 'b32'")

    torch.manual_seed(seed)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_px}, crop_size={"height": image_px, "width": image_px})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    log.info("random %s CLIP written to %s", size, out)
    return out
