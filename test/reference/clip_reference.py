"""CLIP and CLIP-IQA in PyTorch, the reference the test fixtures are computed with.

Written from the semantics of OpenAI's clip/model.py and clip/simple_tokenizer.py: the modified ResNet (three-conv
stem, anti-aliased bottlenecks, attention pooling) and the ViT image towers, the causal text transformer with
QuickGELU (or exact GELU, as open_clip's LAION models), the byte-level BPE tokenizer, and CLIP-IQA's antonym-pair
scores (Wang, Chan & Loy, AAAI 2023) with CLIP-IQA+'s learned context (CoOp, class tokens in the middle).

Everything works on an OpenAI-layout state dict cast to float32; there are no nn.Modules to build.
Needs Debian's python3-torch, python3-numpy, python3-pil and python3-regex; run with /usr/bin/python3.
"""
import gzip
import html
import unicodedata

import numpy as np
import regex
import torch
import torch.nn.functional as F

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# -- tokenizer --------------------------------------------------------------------------------------------------------


def _byte_symbols():
    """OpenAI's bytes_to_unicode: printable bytes map to themselves, the rest to 256 + n."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class Tokenizer:
    SOT, EOT = "<|startoftext|>", "<|endoftext|>"
    SPLIT = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE
    )

    def __init__(self, vocab_path):
        merges = gzip.open(vocab_path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        self.bytes = _byte_symbols()
        symbols = list(self.bytes.values())  # in OpenAI's order: printable bytes first
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [self.SOT, self.EOT]
        self.ids = {t: i for i, t in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}

    def _bpe(self, word):
        if word in (self.SOT, self.EOT):
            return [word]
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda p: self.rank.get(p, 1 << 30))
            if best not in self.rank:
                break
            (first, second), out, i = best, [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        return parts

    @staticmethod
    def clean(text):
        # OpenAI runs ftfy.fix_text first; NFC stands in for it and agrees on well-formed text.
        text = html.unescape(html.unescape(unicodedata.normalize("NFC", text))).strip()
        return regex.sub(r"\s+", " ", text).strip().lower()

    def encode(self, text):
        ids = []
        for piece in self.SPLIT.findall(self.clean(text)):
            word = "".join(self.bytes[b] for b in piece.encode("utf-8"))
            ids += [self.ids[t] for t in self._bpe(word)]
        return ids

    def row(self, text, length=77, truncate=False):
        ids = [self.ids[self.SOT], *self.encode(text), self.ids[self.EOT]]
        if len(ids) > length:
            if not truncate:
                raise ValueError(f"{text!r} needs {len(ids)} tokens, the context holds {length}")
            ids = ids[: length - 1] + [self.ids[self.EOT]]
        return ids + [0] * (length - len(ids))

    def tokenize(self, texts):
        return torch.tensor([self.row(t) for t in texts], dtype=torch.long)


# -- model ----------------------------------------------------------------------------------------------------------


class Clip:
    """CLIP over an OpenAI-layout state dict. act: "quick_gelu" (x·σ(1.702x), OpenAI) or "gelu" (erf, LAION)."""

    def __init__(self, state_dict, act="quick_gelu"):
        assert act in ("quick_gelu", "gelu"), act
        self.act = act
        self.w = {k: v.float() for k, v in state_dict.items() if v.is_floating_point()}
        w = self.w
        self.vit = "visual.proj" in w
        count = lambda prefix, at: len({k.split(".")[at] for k in w if k.startswith(prefix)})  # noqa: E731
        self.text_layers = count("transformer.resblocks.", 2)
        # OpenAI: heads = width // 64; the fixtures' narrow towers get one head.
        self.text_heads = max(1, w["ln_final.weight"].shape[0] // 64)
        if self.vit:
            width = w["visual.conv1.weight"].shape[0]
            self.vision_heads = max(1, width // 64)
            self.vision_layers = count("visual.transformer.resblocks.", 3)
            self.patch = w["visual.conv1.weight"].shape[-1]
        else:
            self.stages = [count(f"visual.layer{s}.", 2) for s in (1, 2, 3, 4)]
            self.vision_heads = w["visual.layer1.0.conv1.weight"].shape[0] * 32 // 64

    def logit_scale(self):
        return float(self.w["logit_scale"].exp())

    # pieces

    def _norm(self, x, p):
        return F.layer_norm(x, x.shape[-1:], self.w[p + ".weight"], self.w[p + ".bias"], 1e-5)

    def _bn_relu(self, x, p, relu=True):
        w = self.w
        x = F.batch_norm(x, w[p + ".running_mean"], w[p + ".running_var"], w[p + ".weight"], w[p + ".bias"], False, 0.0, 1e-5)
        return F.relu(x) if relu else x

    def _dense(self, x, p):
        return F.linear(x, self.w[p + ".weight"], self.w.get(p + ".bias"))

    @staticmethod
    def _attend(q, k, v, heads, mask=None):
        n, lq, d = q.shape
        split = lambda t: t.reshape(n, t.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
        logits = split(q) @ split(k).transpose(-1, -2) / (d // heads) ** 0.5
        if mask is not None:
            logits = logits + mask
        return (logits.softmax(-1) @ split(v)).transpose(1, 2).reshape(n, lq, d)

    def _residual_block(self, x, p, heads, mask=None):
        w = self.w
        q, k, v = F.linear(self._norm(x, p + ".ln_1"), w[p + ".attn.in_proj_weight"], w[p + ".attn.in_proj_bias"]).chunk(3, -1)
        x = x + self._dense(self._attend(q, k, v, heads, mask), p + ".attn.out_proj")
        h = self._dense(self._norm(x, p + ".ln_2"), p + ".mlp.c_fc")
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return x + self._dense(h, p + ".mlp.c_proj")

    @staticmethod
    def _with_positions(x, table, mode):
        """CLIP-IQA's positional modes: dropped, resampled along the token axis (bicubic, the whole table), or as is."""
        if mode == "none":
            return x
        if mode == "interpolate" and table.shape[0] != x.shape[1]:
            table = F.interpolate(table[None, None], size=(x.shape[1], table.shape[1]), mode="bicubic", align_corners=False)[0, 0]
        if table.shape[0] != x.shape[1]:
            raise ValueError(f"the positional table has {table.shape[0]} rows, the input {x.shape[1]} tokens")
        return x + table

    # image towers

    def _resnet(self, x):
        for i in (1, 2, 3):
            x = self._bn_relu(F.conv2d(x, self.w[f"visual.conv{i}.weight"], stride=2 if i == 1 else 1, padding=1), f"visual.bn{i}")
        x = F.avg_pool2d(x, 2)
        for s, blocks in enumerate(self.stages, 1):
            for b in range(blocks):
                p, stride = f"visual.layer{s}.{b}", 2 if s > 1 and b == 0 else 1
                y = self._bn_relu(F.conv2d(x, self.w[p + ".conv1.weight"]), p + ".bn1")
                y = self._bn_relu(F.conv2d(y, self.w[p + ".conv2.weight"], padding=1), p + ".bn2")
                y = self._bn_relu(F.conv2d(F.avg_pool2d(y, stride) if stride > 1 else y, self.w[p + ".conv3.weight"]), p + ".bn3", relu=False)
                if p + ".downsample.0.weight" in self.w:
                    x = F.avg_pool2d(x, stride) if stride > 1 else x
                    x = self._bn_relu(F.conv2d(x, self.w[p + ".downsample.0.weight"]), p + ".downsample.1", relu=False)
                x = F.relu(y + x)
        return x

    def _attention_pool(self, fmap, mode):
        tokens = fmap.flatten(2).transpose(1, 2)
        x = self._with_positions(torch.cat([tokens.mean(1, keepdim=True), tokens], 1), self.w["visual.attnpool.positional_embedding"], mode)
        p = "visual.attnpool."
        out = self._attend(self._dense(x[:, :1], p + "q_proj"), self._dense(x, p + "k_proj"), self._dense(x, p + "v_proj"), self.vision_heads)
        return self._dense(out, p + "c_proj")[:, 0]

    def _vit(self, x, mode):
        w = self.w
        x = F.conv2d(x, w["visual.conv1.weight"], stride=self.patch).flatten(2).transpose(1, 2)
        x = torch.cat([w["visual.class_embedding"].expand(x.shape[0], 1, -1), x], 1)
        x = self._norm(self._with_positions(x, w["visual.positional_embedding"], mode), "visual.ln_pre")
        for i in range(self.vision_layers):
            x = self._residual_block(x, f"visual.transformer.resblocks.{i}", self.vision_heads)
        return self._norm(x[:, 0], "visual.ln_post") @ w["visual.proj"]

    @torch.no_grad()
    def encode_image(self, pixels, mode="fixed"):
        """pixels: (N, 3, H, W), normalised with MEAN/STD; mode: none | interpolate | fixed."""
        return self._vit(pixels, mode) if self.vit else self._attention_pool(self._resnet(pixels), mode)

    @torch.no_grad()
    def dense_features(self, pixels):
        """(N, h, w, D): each final ResNet location through the pool's value and output projections (MaskCLIP)."""
        tokens = self._resnet(pixels).permute(0, 2, 3, 1)
        return self._dense(self._dense(tokens, "visual.attnpool.v_proj"), "visual.attnpool.c_proj")

    # text tower

    def token_embeddings(self, tokens):
        return self.w["token_embedding.weight"][tokens]

    @torch.no_grad()
    def encode_text(self, tokens, embeddings=None):
        """tokens (N, 77); embeddings, when given, replace the looked-up ones (learned contexts); EOT = argmax id."""
        x = (self.token_embeddings(tokens) if embeddings is None else embeddings) + self.w["positional_embedding"]
        mask = torch.full((x.shape[1], x.shape[1]), float("-inf")).triu(1)
        for i in range(self.text_layers):
            x = self._residual_block(x, f"transformer.resblocks.{i}", self.text_heads, mask)
        x = self._norm(x, "ln_final")
        return x[torch.arange(x.shape[0]), tokens.argmax(-1)] @ self.w["text_projection"]


# -- CLIP-IQA -----------------------------------------------------------------------------------------------------------


def load_pixels(path):
    """An image as CLIP-IQA feeds it: RGB at its own size, /255, minus MEAN, over STD; (1, 3, H, W) float32."""
    from PIL import Image

    x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    return ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])[None]


def pair_scores(image_features, text_features, logit_scale):
    """(N, D) images, (P, 2, D) antonym pairs -> (N, P): softmax of scale·cosine over each pair, first prompt's share."""
    img, txt = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
    return (logit_scale * torch.einsum("nd,pkd->npk", img, txt)).softmax(-1)[..., 0]


def learned_prompt(model, tokenizer, classname, ctx):
    """CLIP-IQA+'s prompt: "X X … X <classname>." tokenized; the X slots become the learned context, split in two
    around the class tokens (SOT, ctx[:n/2], class, ctx[n/2:], rest). Returns (tokens (1, 77), embeddings (1, 77, W))."""
    n = ctx.shape[0]
    tokens = tokenizer.tokenize([" ".join(["X"] * n) + " " + classname + "."])
    emb = model.token_embeddings(tokens)[0]
    k = len(tokenizer.encode(classname))
    rest = emb[1 + n :]
    return tokens, torch.cat([emb[:1], ctx[: n // 2], rest[:k], ctx[n // 2 :], rest[k:]])[None]
