"""Writes the repository's test fixtures (test/fixtures) and the values clip_reference.py computes from them.

  /usr/bin/python3 test/reference/make_fixtures.py [--check-shared DIR]

Weights come from a counter-based PRNG of 32-bit integer operations whose outputs are scaled by powers of two, so
test/helpers/fixture-weights.ts makes the very same float32 bits: only what real PyTorch must write (torch.save,
TorchScript, the CLIP-IQA+ context files) is committed, and test/fixtures/generated.json tells the TypeScript side
how to write every safetensors model (and its SHA-256, which it checks). --check-shared DIR also runs this reference
on the fixtures of another set (../shared/fixtures) and compares with the values stored there.
"""
import hashlib
import io
import json
import math
import os
import shutil
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures")
VOCAB = os.path.join(ROOT, "assets", "bpe_simple_vocab_16e6.txt.gz")
sys.path.insert(0, HERE)
import clip_reference as ref  # noqa: E402

SEED = 20261204
# ln 10 as a float64 literal, so both languages round the same number to float32.
LOGIT_SCALE = 2.302585092994046
TEXT = dict(text_width=4, text_layers=2)
MODELS = {
    "tiny-rn": dict(kind="rn", embed_dim=16, width=4, layers=[1, 2, 1, 1], resolution=64, **TEXT),
    "tiny-vit": dict(kind="vit", embed_dim=16, width=128, patch=8, vision_layers=1, resolution=64, **TEXT),
}
# transformers' layout gets a narrower ViT (one head): its pytorch_model.bin is committed, and float32 throughout.
NARROW_VIT = dict(kind="vit", embed_dim=16, width=64, patch=8, vision_layers=1, resolution=64, **TEXT)
# The layouts publishers use, over the same weights (names are the PRNG keys, so equal names give equal values).
FORMATS = {
    "openclip-rn": dict(model="tiny-rn", layout="open_clip", act="quick_gelu"),
    "openclip-vit-gelu": dict(model="tiny-vit", layout="open_clip", act="gelu"),
    "hf-vit": dict(model="narrow-vit", layout="hf", act="quick_gelu"),
}
IMAGES = [(64, 64, "RGB"), (96, 80, "RGB"), (53, 37, "RGB"), (70, 66, "L"), (64, 48, "RGBA")]

PAIRS = [  # the paper's twelve (positive first; noisiness as the official config) and five more
    ("quality", "Good photo.", "Bad photo."), ("brightness", "Bright photo.", "Dark photo."),
    ("sharpness", "Sharp photo.", "Blurry photo."), ("noisiness", "Noisy photo.", "Clean photo."),
    ("colorfulness", "Colorful photo.", "Dull photo."), ("contrast", "High contrast photo.", "Low contrast photo."),
    ("aesthetic", "Aesthetic photo.", "Not aesthetic photo."), ("happy", "Happy photo.", "Sad photo."),
    ("natural", "Natural photo.", "Synthetic photo."), ("new", "New photo.", "Old photo."),
    ("scary", "Scary photo.", "Peaceful photo."), ("complex", "Complex photo.", "Simple photo."),
    ("warm", "Warm photo.", "Cold photo."), ("real", "Real photo.", "Abstract photo."),
    ("beautiful", "Beautiful photo.", "Ugly photo."), ("lonely", "Lonely photo.", "Sociable photo."),
    ("relaxing", "Relaxing photo.", "Stressful photo."),
]
ENSEMBLE = [("Good image", "bad image"), ("Sharp image", "blurry image"), ("sharp edges", "blurry edges"),
            ("High resolution image", "low resolution image"), ("Noise-free image", "noisy image")]
PLUS_CLASSES = ("Good photo.", "Bad photo.")
TEXTS = [
    "a photo of a cat", "A PHOTO OF A DOG!!", "  several   spaces\tand\nlines  ", "it's they're we've I'm you'll he'd",
    "numbers 1234567890 and 2.71828", "mail: someone@example.org", "Crème brûlée, naïve café", "日本語のテキスト",
    "Ελληνικά", "emoji 😀🎉", "&amp; &lt;b&gt; &quot;q&quot; &#39;s&#39;", "snake_case and kebab-case", "", "Mixed CaSe",
    "<|startoftext|> in the text <|endoftext|>", "?!... ;:", "https://example.org/a?b=1&c=2", "z" * 30,
    "X X X X X X X X X X X X X X X X Good photo..", "X X X X X X X X X X X X X X X X Bad photo..",
]
LONG_TEXT = " ".join(["photo"] * 90)


# -- the PRNG (test/helpers/fixture-weights.ts is its twin) ------------------------------------------------------------

M32 = 0xFFFFFFFF


def mix32(x):
    """A 32-bit integer hash (Wellons' lowbias32): ints or uint64 arrays holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def key_of(name, seed=SEED):
    h = 0x811C9DC5  # FNV-1a over the UTF-8 name
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & M32
    return mix32(h ^ seed)


def stream(name, count, offset=0, bits=24):
    """count integers of `bits` bits (the top ones of each hash) of the stream `name`, from position offset."""
    i = np.arange(offset, offset + count, dtype=np.uint64)
    return mix32(mix32(i) ^ np.uint64(key_of(name))) >> np.uint64(32 - bits)


def uniform(name, count, base, log2amp, offset=0, bits=24):
    """base + U[-2^log2amp, 2^log2amp) on a grid of 2^bits steps: exact in float64, then rounded once to float32."""
    s = stream(name, count, offset, bits).astype(np.int64) - (1 << (bits - 1))
    return (base + s.astype(np.float64) * math.ldexp(1.0, log2amp - bits + 1)).astype(np.float32)


# -- weights: a spec of every tensor, then its values ------------------------------------------------------------------


def half_log2(n):
    """The least k with 4^k >= n: 2^-k is 1/sqrt(n) rounded down to a power of two."""
    k = 0
    while 4**k < n:
        k += 1
    return k


def openai_spec(cfg):
    """The OpenAI state dict of a config as [(name, shape, fill)]: fill is {base, log2amp} (uniform), {value} or
    {int: "zeros"}. Weights have a spread of about 1/sqrt(fan-in), norms scale about 1, biases about 1/64."""
    spec = []

    def rand(name, shape, base=0.0, log2amp=-6, bits=24):
        spec.append((name, list(shape), {"base": base, "log2amp": log2amp, "bits": bits}))

    def weight(name, shape, fan_in):
        rand(name, shape, log2amp=1 - half_log2(fan_in))

    def linear(p, out, inp, bias=True):
        weight(p + ".weight", (out, inp), inp)
        if bias:
            rand(p + ".bias", (out,))

    def norm(p, c):
        rand(p + ".weight", (c,), 1.0, -3)
        rand(p + ".bias", (c,), 0.0, -3)

    def batch_norm(p, c):
        rand(p + ".weight", (c,), 1.0, -2)
        rand(p + ".bias", (c,), 0.0, -3)
        rand(p + ".running_mean", (c,), 0.0, -3)
        rand(p + ".running_var", (c,), 0.75, -2)
        spec.append((p + ".num_batches_tracked", [], {"int": "zeros"}))

    def conv(p, out, inp, k):
        weight(p + ".weight", (out, inp, k, k), inp * k * k)

    def block(p, d):
        weight(p + ".attn.in_proj_weight", (3 * d, d), d)
        rand(p + ".attn.in_proj_bias", (3 * d,))
        linear(p + ".attn.out_proj", d, d)
        norm(p + ".ln_1", d)
        linear(p + ".mlp.c_fc", 4 * d, d)
        linear(p + ".mlp.c_proj", d, 4 * d)
        norm(p + ".ln_2", d)

    embed, t = cfg["embed_dim"], cfg["text_width"]
    if cfg["kind"] == "rn":
        w = cfg["width"]
        for i, (cin, cout) in enumerate([(3, w // 2), (w // 2, w // 2), (w // 2, w)], 1):
            conv(f"visual.conv{i}", cout, cin, 3)
            batch_norm(f"visual.bn{i}", cout)
        inplanes = w
        for s, blocks in enumerate(cfg["layers"], 1):
            planes = w << (s - 1)
            for b in range(blocks):
                p = f"visual.layer{s}.{b}"
                conv(p + ".conv1", planes, inplanes, 1)
                batch_norm(p + ".bn1", planes)
                conv(p + ".conv2", planes, planes, 3)
                batch_norm(p + ".bn2", planes)
                conv(p + ".conv3", 4 * planes, planes, 1)
                batch_norm(p + ".bn3", 4 * planes)
                if b == 0 and (s > 1 or inplanes != 4 * planes):
                    conv(p + ".downsample.0", 4 * planes, inplanes, 1)
                    batch_norm(p + ".downsample.1", 4 * planes)
                inplanes = 4 * planes
        c, grid = 32 * w, cfg["resolution"] // 32
        weight("visual.attnpool.positional_embedding", (grid * grid + 1, c), c)
        for n in ("k_proj", "q_proj", "v_proj"):
            linear("visual.attnpool." + n, c, c)
        linear("visual.attnpool.c_proj", embed, c)
    else:
        w, patch = cfg["width"], cfg["patch"]
        grid = cfg["resolution"] // patch
        weight("visual.class_embedding", (w,), w)
        weight("visual.positional_embedding", (grid * grid + 1, w), w)
        weight("visual.proj", (w, embed), w)
        conv("visual.conv1", w, 3, patch)
        norm("visual.ln_pre", w)
        for i in range(cfg["vision_layers"]):
            block(f"visual.transformer.resblocks.{i}", w)
        norm("visual.ln_post", w)
    rand("positional_embedding", (77, t), log2amp=-4)
    weight("text_projection", (t, embed), t)
    spec.append(("logit_scale", [], {"value": LOGIT_SCALE}))
    # Sixteen levels: the table is most of every committed checkpoint, and a low-entropy one packs small in git.
    rand("token_embedding.weight", (49408, t), log2amp=-4, bits=4)
    for i in range(cfg["text_layers"]):
        block(f"transformer.resblocks.{i}", t)
    norm("ln_final", t)
    return spec


def entries(spec):
    """Spec items as manifest tensors: {name, dtype, shape, fill}; `key` names the PRNG stream (the OpenAI name)."""
    out = []
    for name, shape, fill in spec:
        if "int" in fill:
            out.append({"name": name, "dtype": "I64", "shape": shape, "fill": fill})
        else:
            out.append({"name": name, "dtype": "F32", "shape": shape, "fill": dict(fill, key=name) if "base" in fill else fill})
    return out


def to_hf(tensors, cfg):
    """OpenAI-layout ViT entries -> transformers CLIPModel entries: q/k/v split (a row offset into the stream),
    projections transposed, position_ids buffers."""
    by = {e["name"]: e for e in tensors}
    out = []

    def put(name, src, **change):
        e = dict(by[src], name=name)
        e["fill"] = dict(e["fill"], **{k: v for k, v in change.items() if k in ("offset", "transpose")})
        e["shape"] = change.get("shape", e["shape"])
        out.append(e)

    def block(src, dst, d):
        for j, n in enumerate(("q_proj", "k_proj", "v_proj")):
            put(f"{dst}.self_attn.{n}.weight", src + ".attn.in_proj_weight", offset=j * d * d, shape=[d, d])
            put(f"{dst}.self_attn.{n}.bias", src + ".attn.in_proj_bias", offset=j * d, shape=[d])
        for a, b in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("mlp.fc1", "mlp.c_fc"),
                     ("mlp.fc2", "mlp.c_proj"), ("layer_norm2", "ln_2")):
            put(f"{dst}.{a}.weight", f"{src}.{b}.weight")
            put(f"{dst}.{a}.bias", f"{src}.{b}.bias")

    t, w = cfg["text_width"], cfg["width"]
    grid = cfg["resolution"] // cfg["patch"]
    put("text_model.embeddings.token_embedding.weight", "token_embedding.weight")
    put("text_model.embeddings.position_embedding.weight", "positional_embedding")
    out.append({"name": "text_model.embeddings.position_ids", "dtype": "I64", "shape": [1, 77], "fill": {"int": "arange"}})
    for i in range(cfg["text_layers"]):
        block(f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", t)
    put("text_model.final_layer_norm.weight", "ln_final.weight")
    put("text_model.final_layer_norm.bias", "ln_final.bias")
    put("vision_model.embeddings.class_embedding", "visual.class_embedding")
    put("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight")
    put("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding")
    out.append({"name": "vision_model.embeddings.position_ids", "dtype": "I64", "shape": [1, grid * grid + 1], "fill": {"int": "arange"}})
    put("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight")
    put("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias")
    for i in range(cfg["vision_layers"]):
        block(f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}", w)
    put("vision_model.post_layernorm.weight", "visual.ln_post.weight")
    put("vision_model.post_layernorm.bias", "visual.ln_post.bias")
    put("visual_projection.weight", "visual.proj", transpose=True, shape=by["visual.proj"]["shape"][::-1])
    put("text_projection.weight", "text_projection", transpose=True, shape=by["text_projection"]["shape"][::-1])
    put("logit_scale", "logit_scale")
    return out


def materialize(entry):
    """The tensor a manifest entry describes (the TypeScript twin: fixture-weights.ts `materialize`)."""
    shape, fill = entry["shape"], entry["fill"]
    count = math.prod(shape)
    if "int" in fill:
        values = np.zeros(count, np.int64) if fill["int"] == "zeros" else np.arange(count, dtype=np.int64)
        return torch.from_numpy(values.reshape(shape))
    if "value" in fill:
        return torch.from_numpy(np.full(shape, fill["value"], np.float32))
    if fill.get("transpose"):
        values = uniform(fill["key"], count, fill["base"], fill["log2amp"], 0, fill["bits"]).reshape(shape[::-1]).T.copy()
    else:
        values = uniform(fill["key"], count, fill["base"], fill["log2amp"], fill.get("offset", 0), fill["bits"]).reshape(shape)
    return torch.from_numpy(values)


def state_dict(tensors):
    return OrderedDict((e["name"], materialize(e)) for e in tensors)


# -- writers -----------------------------------------------------------------------------------------------------------

DTYPE_CODES = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}


def safetensors_bytes(tensors, metadata=None):
    """The safetensors encoding fixture-weights.ts writes too: compact JSON header in insertion order, space-padded
    to 8 bytes."""
    header, blobs, at = ({"__metadata__": metadata} if metadata else {}), [], 0
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPE_CODES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def as_openai_fp16(sd):
    """As OpenAI's convert_weights leaves its published archives: conv, linear and attention weights and biases and
    the two projections in float16; norms, embeddings and the logit scale in float32."""
    def half(name, t):
        if name in ("text_projection", "visual.proj") or name.endswith(("in_proj_weight", "in_proj_bias")):
            return True
        prefix, _, leaf = name.rpartition(".")
        owner = sd.get(prefix + ".weight")
        return leaf in ("weight", "bias") and owner is not None and owner.dim() >= 2 and "embedding" not in prefix
    return OrderedDict((k, v.half() if v.is_floating_point() and half(k, v) else v) for k, v in sd.items())


def save_torchscript(path, sd, cfg):
    """A TorchScript archive whose module tree holds the state dict, as OpenAI's RN50.pt etc.: plus the integer
    buffers input_resolution, context_length and vocab_size, and each text block's causal mask as a plain tensor
    attribute. The root class is __torch__.…CLIP, as theirs."""
    tree = CLIP()
    flat = OrderedDict(sd)
    for name, value in (("input_resolution", cfg["resolution"]), ("context_length", 77), ("vocab_size", 49408)):
        flat[name] = torch.tensor(value)
    for key, value in flat.items():
        *path_, leaf = key.split(".")
        module = tree
        for part in path_:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        if value.is_floating_point():
            module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(leaf, value)
    for i in range(cfg["text_layers"]):
        getattr(tree.transformer.resblocks, str(i)).attn_mask = torch.full((77, 77), float("-inf")).triu(1)
    torch.jit.script(tree).save(path)


class CLIP(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# -- images ---------------------------------------------------------------------------------------------------------------


def synthetic_image(index, width, height, mode):
    """Smooth colour waves, a darker disc and a little noise: structure enough to move the features."""
    name = f"image{index}"
    p = uniform(name + ".params", 10, 0.5, -1).astype(np.float64)  # in [0, 1)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.stack([0.5 + 0.35 * np.sin((1 + 5 * p[c]) * x / width * 3.14159 + 6.28 * p[3 + c]) * np.cos((1 + 4 * p[6]) * y / height * 3.14159)
                    for c in range(3)], -1)
    cx, cy, r = p[7] * width, p[8] * height, (0.2 + 0.3 * p[9]) * min(width, height)
    rgb[(x - cx) ** 2 + (y - cy) ** 2 < r * r] *= 0.45
    rgb += uniform(name + ".noise", height * width * 3, 0.0, -4).reshape(height, width, 3)
    img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB")
    return img.convert(mode) if mode != "RGB" else img


# -- expected values ----------------------------------------------------------------------------------------------------


def expected_values(model, cfg, tok, images, pixels, ctx, prefix, dense):
    """The values of one variant: (json part, tensors) in the structure of shared/README.md."""
    tensors = {}
    txt = model.encode_text(tok.tokenize([p for _, a, b in PAIRS for p in (a, b)])).reshape(len(PAIRS), 2, -1)
    ens = model.encode_text(tok.tokenize([p for pair in ENSEMBLE for p in pair])).reshape(len(ENSEMBLE), 2, -1)
    tensors[prefix + "text/attributes"], tensors[prefix + "text/ensemble"] = txt, ens
    scale = model.logit_scale()
    v = {"logit_scale": scale, "attribute_names": [n for n, _, _ in PAIRS], "scores": {}, "clipiqa+": {}}
    plus = []
    for cls in PLUS_CLASSES:
        tokens, emb = ref.learned_prompt(model, tok, cls, ctx)
        tensors[f"{prefix}clipiqa+/embeddings/{cls}"] = emb[0]
        plus.append(model.encode_text(tokens, emb)[0])
    plus = torch.stack(plus)
    tensors[prefix + "clipiqa+/ctx"], tensors[prefix + "clipiqa+/text"] = ctx, plus
    for name in images:
        x, modes = pixels[name], {}
        for mode in ("none", "interpolate"):
            f = model.encode_image(x, mode)
            tensors[f"{prefix}image/{name}/{mode}"] = f[0]
            modes[mode] = {"attributes": dict(zip(v["attribute_names"], ref.pair_scores(f, txt, scale)[0].tolist())),
                           "ensemble_mean": float(ref.pair_scores(f, ens, scale)[0].mean())}
        if x.shape[-2:] == (cfg["resolution"], cfg["resolution"]):
            tensors[f"{prefix}image/{name}/fixed"] = model.encode_image(x, "fixed")[0]
        if dense:
            tensors[f"{prefix}dense/{name}"] = model.dense_features(x)[0]
        v["scores"][name] = modes
        v["clipiqa+"][name] = float(ref.pair_scores(model.encode_image(x, "none"), plus[None], scale)[0, 0])
    return v, tensors


def context(name, cfg):
    """A CLIP-IQA+ context (16 tokens × text width), float16 as pyiqa ships it."""
    return torch.from_numpy(uniform(name + ".clipiqa+.ctx", 16 * cfg["text_width"], 0.0, -4).reshape(16, -1)).half()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main():
    args = sys.argv[1:]
    tok = ref.Tokenizer(VOCAB)
    manifest = {"about": "What test/helpers/fixture-weights.ts generates before the tests (global-setup.ts), and "
                         "the SHA-256 it must reach; written by test/reference/make_fixtures.py.",
                "seed": SEED, "prng_check": {"stream": "check", "first": [int(v) for v in stream("check", 4)]}, "files": []}

    def generated(path, tensors, metadata=None):
        data = safetensors_bytes(state_dict(tensors), metadata)
        write(os.path.join(OUT, path), data)  # ignored by git; the tests regenerate it
        manifest["files"].append({"path": path, "metadata": metadata, "bytes": len(data), "sha256": sha256(data), "tensors": tensors})

    os.makedirs(OUT, exist_ok=True)
    # Tokenizer cases: every prompt the suite needs, and some harder text.
    texts = [p for _, a, b in PAIRS for p in (a, b)] + [p for pair in ENSEMBLE for p in pair] + TEXTS
    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump({"context_length": 77, "cases": [{"text": t, "ids": tok.row(t)} for t in texts],
                   "too_long": {"text": LONG_TEXT, "truncated_ids": tok.row(LONG_TEXT, truncate=True)}}, f, ensure_ascii=False, indent=0)

    images, pixels = [], {}
    os.makedirs(os.path.join(OUT, "images"), exist_ok=True)
    for i, (w, h, mode) in enumerate(IMAGES):
        name = f"img{i}-{w}x{h}-{mode.lower()}.png"
        path = os.path.join(OUT, "images", name)
        synthetic_image(i, w, h, mode).save(path, optimize=True)
        images.append(name)
        pixels[name] = ref.load_pixels(path)
    write(os.path.join(OUT, "images", "pixels.safetensors"), safetensors_bytes(
        OrderedDict((n, pixels[n][0]) for n in images), {"about": "RGB at native size, /255, CLIP mean and std, CHW float32"}))

    expected_of = {}
    for name, cfg in MODELS.items():
        folder = os.path.join(OUT, name)
        tensors = entries(openai_spec(cfg))
        generated(f"{name}/model.safetensors", tensors, {"format": "pt", "about": "random weights, OpenAI layout"})
        sd = state_dict(tensors)
        ctx = context(name, cfg)
        if cfg["kind"] == "rn":
            torch.save(sd, os.path.join(folder, "model.pt"))
        fp16 = as_openai_fp16(sd)
        save_torchscript(os.path.join(folder, "model-jit-fp16.pt"), fp16, cfg)
        torch.save(ctx, os.path.join(folder, "clipiqa+-ctx.pth"))  # pyiqa's file: one bare float16 tensor
        torch.save({"meta": {"iter": 80000, "mmedit_version": "0.16.1"}, "state_dict": OrderedDict([
            ("generator.clipmodel_0.prompt_learner.ctx", ctx.float()), ("generator.clipmodel_0.logit_scale", sd["logit_scale"])])},
            os.path.join(folder, "clipiqa+-mmedit.pth"))  # the official MMEditing checkpoint's shape
        doc = {"config": cfg, "images": images, "variants": {}}
        out = {}
        for variant, weights in (("fp32", sd), ("jit-fp16", fp16)):
            doc["variants"][variant], t = expected_values(ref.Clip(weights), cfg, tok, images, pixels, ctx.float(), variant + "/", cfg["kind"] == "rn")
            out.update(t)
        write(os.path.join(folder, "expected.safetensors"), safetensors_bytes(out))
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump(doc, f, indent=1)
        expected_of[name] = (tensors, sd, ctx)

    tensors = entries(openai_spec(NARROW_VIT))
    expected_of["narrow-vit"] = (tensors, state_dict(tensors), context("narrow-vit", NARROW_VIT))
    for name, fmt in FORMATS.items():
        cfg = MODELS.get(fmt["model"], NARROW_VIT)
        tensors, sd, ctx = expected_of[fmt["model"]]
        folder = os.path.join(OUT, "formats", name)
        if fmt["layout"] == "open_clip":
            generated(f"formats/{name}/open_clip_model.safetensors", tensors)
            if cfg["kind"] == "rn":
                # open_clip's .bin is torch.save of OpenAI-named tensors: the very bytes of tiny-rn/model.pt.
                shutil.copyfile(os.path.join(OUT, fmt["model"], "model.pt"), os.path.join(folder, "open_clip_pytorch_model.bin"))
            vision = {"image_size": cfg["resolution"], "width": cfg["width"]}
            vision.update(layers=cfg["layers"]) if cfg["kind"] == "rn" else vision.update(layers=cfg["vision_layers"], patch_size=cfg["patch"])
            model_cfg = {"embed_dim": cfg["embed_dim"], "vision_cfg": vision, "text_cfg": {
                "context_length": 77, "vocab_size": 49408, "width": cfg["text_width"], "heads": max(1, cfg["text_width"] // 64), "layers": cfg["text_layers"]}}
            if fmt["act"] == "quick_gelu":
                model_cfg["quick_gelu"] = True
            config = ("open_clip_config.json", {"model_cfg": model_cfg, "preprocess_cfg": {
                "mean": list(ref.MEAN), "std": list(ref.STD), "interpolation": "bicubic", "resize_mode": "shortest"}})
        else:
            hf = to_hf(tensors, cfg)
            generated(f"formats/{name}/model.safetensors", hf, {"format": "pt"})
            os.makedirs(folder, exist_ok=True)
            torch.save(state_dict(hf), os.path.join(folder, "pytorch_model.bin"))
            common = {"hidden_act": fmt["act"], "layer_norm_eps": 1e-05, "projection_dim": cfg["embed_dim"]}
            config = ("config.json", {
                "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": cfg["embed_dim"],
                "logit_scale_init_value": 2.6592, "torch_dtype": "float32",
                "text_config": {"model_type": "clip_text_model", "hidden_size": cfg["text_width"], "intermediate_size": 4 * cfg["text_width"],
                                "num_attention_heads": max(1, cfg["text_width"] // 64), "num_hidden_layers": cfg["text_layers"],
                                "max_position_embeddings": 77, "vocab_size": 49408, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1, **common},
                "vision_config": {"model_type": "clip_vision_model", "hidden_size": cfg["width"], "intermediate_size": 4 * cfg["width"],
                                  "num_attention_heads": max(1, cfg["width"] // 64), "num_hidden_layers": cfg["vision_layers"],
                                  "image_size": cfg["resolution"], "patch_size": cfg["patch"], "num_channels": 3, **common}})
        with open(os.path.join(folder, config[0]), "w") as f:
            json.dump(config[1], f, indent=2)
        torch.save(ctx, os.path.join(folder, "clipiqa+-ctx.pth"))
        v, t = expected_values(ref.Clip(sd, act=fmt["act"]), cfg, tok, images, pixels, ctx.float(), "fp32/", cfg["kind"] == "rn")
        write(os.path.join(folder, "expected.safetensors"), safetensors_bytes(t))
        with open(os.path.join(folder, "expected.json"), "w") as f:
            json.dump({"config": dict(cfg, layout=fmt["layout"], act=fmt["act"]), "images": images, "variants": {"fp32": v}}, f, indent=1)

    with open(os.path.join(OUT, "generated.json"), "w") as f:
        json.dump(manifest, f, indent=0, separators=(",", ":"))
        f.write("\n")
    print("fixtures written to", OUT)
    if "--check-shared" in args:
        check_shared(args[args.index("--check-shared") + 1], tok)


# -- checking this reference against another set's stored values ------------------------------------------------------


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    return {k: torch.from_numpy(np.frombuffer(data, kinds[h["dtype"]], math.prod(h["shape"]), 8 + n + h["data_offsets"][0]).reshape(h["shape"]).copy())
            for k, h in header.items() if k != "__metadata__"}


def check_shared(root, tok):
    """Runs this reference on another fixture set's float32 weights and images; prints the largest deviations."""
    cases = json.load(open(os.path.join(root, "tokenizer.json")))["cases"]
    bad = [c["text"] for c in cases if tok.row(c["text"]) != c["ids"]]
    print(f"tokenizer: {len(cases) - len(bad)}/{len(cases)} cases equal", bad[:3])
    worst = 0.0
    for folder in ("tiny-rn", "tiny-vit", "formats/openclip-vit-gelu"):
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            continue
        doc = json.load(open(os.path.join(base, "expected.json")))
        weights = "model.safetensors" if os.path.exists(os.path.join(base, "model.safetensors")) else "open_clip_model.safetensors"
        model = ref.Clip(read_safetensors(os.path.join(base, weights)), act=doc["config"].get("act", "quick_gelu"))
        want = read_safetensors(os.path.join(base, "expected.safetensors"))
        ctx = want["fp32/clipiqa+/ctx"]
        images = doc["images"]
        pixels = {n: ref.load_pixels(os.path.join(root, "images", n)) for n in images}
        v, got = expected_values(model, doc["config"], tok, images, pixels, ctx, "fp32/", doc["config"]["kind"] == "rn")
        for k, t in got.items():
            if k in want:
                worst = max(worst, float((t - want[k]).abs().max() / want[k].abs().max()))
        ref_scores = doc["variants"]["fp32"]["scores"]
        score_dev = max(abs(v["scores"][n][m]["attributes"][a] - ref_scores[n][m]["attributes"][a])
                        for n in images for m in ("none", "interpolate") for a in v["attribute_names"])
        print(f"{folder}: max |Δ|/max|expected| {worst:.2e}, max score |Δ| {score_dev:.2e}")


if __name__ == "__main__":
    main()
