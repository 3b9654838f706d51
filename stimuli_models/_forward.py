"""Batched forward passes over token windows and pooling of their hidden states.

Windows are sorted by length and batched (right padding with an attention
mask); only the hidden states of the tokens being pooled are gathered on the
device and copied to the host, once per batch, as float32.
"""

from __future__ import annotations

import numpy as np


def forward_hidden(model, input_ids, attention_mask):
    """All hidden states of a batch.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Encoder or decoder (or a soft-prompt wrapper around one).
    input_ids, attention_mask : torch.LongTensor of shape (batch, n_tokens)

    Returns
    -------
    tuple of torch.Tensor of shape (batch, n_positions, hidden_size)
        Embeddings then every layer (``n_layers + 1`` tensors).
    """
    result = model(input_ids=input_ids, attention_mask=attention_mask,
                   output_hidden_states=True)
    return result.hidden_states


#: Model types known to attend in both directions, or only to the past.
ENCODER_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta",
    "deberta-v2", "mpnet", "camembert", "ernie", "nezha", "megatron-bert", "modernbert",
})
DECODER_TYPES = frozenset({
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "mixtral", "qwen2", "qwen3",
    "phi", "phi3", "gemma", "gemma2", "gemma3_text", "opt", "bloom", "falcon", "olmo", "olmo2",
    "smollm3", "stablelm", "starcoder2",
})


def causal_probe(model, token_ids: np.ndarray, prefix: list[int], n_virtual: int,
                 device: str) -> bool:
    """Whether a token's hidden states ignore the tokens after it (a decoder).

    Known model types answer from their configuration. Otherwise two short
    sequences that differ only in their last token go through the model; the
    model is causal when the states of every earlier position agree.
    """
    import torch

    model_type = str(getattr(model.config, "model_type", ""))
    if model_type in ENCODER_TYPES and not getattr(model.config, "is_decoder", False):
        return False
    if model_type in DECODER_TYPES:
        return True

    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    a = int(token_ids[0]) if len(token_ids) else 0
    b = int(token_ids[1]) if len(token_ids) > 1 else a
    other = a + 1 if vocab == 0 or a + 1 < vocab else a - 1
    body = [a, b, a]
    ids = torch.tensor([prefix + body + [a], prefix + body + [other]], dtype=torch.long)
    with torch.inference_mode():
        states = forward_hidden(model, ids.to(device), torch.ones_like(ids).to(device))
    last = n_virtual + ids.shape[1] - 1
    return all(
        torch.allclose(h[0, :last].float(), h[1, :last].float(), rtol=1e-4, atol=1e-5)
        for h in states
    )


def _gather_plan(batch, token_word, pool, before):
    """Rows, positions and segments of the tokens to pool in a batch.

    Returns
    -------
    rows, positions : ndarray of shape (n_gathered,)
    seg_start : ndarray of shape (n_segments,)
        First gathered token of each segment (segments are consecutive).
    seg_words : list of (int, int)
        Words ``[w0, w1)`` that receive each segment's pooled vector.
    """
    rows, positions, seg_start, seg_words = [], [], [], []
    count = 0
    for row, (t0, t1, targets) in enumerate(batch):
        if pool in ("cls", "sentence-mean"):
            for w0, w1, s0, s1 in targets:
                pos = np.array([0]) if pool == "cls" else np.arange(s0, s1) - t0 + before
                rows.append(np.full(len(pos), row))
                positions.append(pos)
                seg_start.append(count)
                seg_words.append((w0, w1))
                count += len(pos)
            continue
        window_words = token_word[t0:t1]
        keep = np.zeros(len(window_words), dtype=bool)
        for w0, w1, _, _ in targets:
            keep |= (window_words >= w0) & (window_words < w1)
        index = np.flatnonzero(keep)
        if not len(index):
            continue
        words = window_words[index]
        first = np.flatnonzero(np.r_[True, words[1:] != words[:-1]])
        uniq = words[first]
        if pool == "first":
            index, first = index[first], np.arange(len(first))
        elif pool == "last":
            index, first = index[np.r_[first[1:], len(words)] - 1], np.arange(len(first))
        rows.append(np.full(len(index), row))
        positions.append(index + before)
        seg_start.extend((first + count).tolist())
        seg_words.extend((int(w), int(w) + 1) for w in uniq)
        count += len(index)
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, []
    return (np.concatenate(rows), np.concatenate(positions),
            np.asarray(seg_start, dtype=np.int64), seg_words)


def _gather(states, layers, rows, positions) -> np.ndarray:
    """States of the given (row, position) pairs of the kept layers, float32 on the host.

    On CPU the gathering is done by numpy on views of the tensors: torch's
    threaded indexing kernels are far slower for these small gathers on a busy
    machine. On GPU only the gathered rows are copied to the host.
    """
    import torch

    first = states[layers[0]]
    if first.device.type == "cpu":
        return np.stack([states[k].float().numpy()[rows, positions] for k in layers])
    rows_t = torch.from_numpy(rows).to(first.device)
    pos_t = torch.from_numpy(positions).to(first.device)
    return torch.stack([states[k][rows_t, pos_t] for k in layers]).float().cpu().numpy()


def run_groups(model, tokenizer, token_ids, token_word, groups, layers, pool, *, batch_size,
               specials, n_virtual, device, n_words):
    """Run every window group through the model and pool target states into words.

    Parameters
    ----------
    groups : list of (token_start, token_end, targets)
        From :func:`stimuli_models.windows.group_windows`.
    layers : tuple of int
        Hidden states to keep.
    pool : {'mean', 'first', 'last', 'cls', 'sentence-mean'}
        Pooling of the gathered tokens.

    Returns
    -------
    features : ndarray of shape (n_layers_kept, n_words, hidden_size)
        float32.
    done : ndarray of shape (n_words,)
        Which words received features.
    """
    import torch

    prefix, suffix = specials
    before = len(prefix)
    out = None
    done = np.zeros(n_words, dtype=bool)
    order = sorted(range(len(groups)), key=lambda i: (groups[i][1] - groups[i][0], i))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.inference_mode():
        for b0 in range(0, len(order), batch_size):
            batch = [groups[i] for i in order[b0:b0 + batch_size]]
            width = max(t1 - t0 for t0, t1, _ in batch) + before + len(suffix)
            ids = np.full((len(batch), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, (t0, t1, _) in enumerate(batch):
                seq = np.r_[prefix, token_ids[t0:t1], suffix]
                ids[row, :len(seq)] = seq
                mask[row, :len(seq)] = 1
            rows, pos, seg_start, seg_words = _gather_plan(batch, token_word, pool, before)
            if not len(rows):
                continue
            states = forward_hidden(model, torch.from_numpy(ids).to(device),
                                    torch.from_numpy(mask).to(device))
            gathered = _gather(states, layers, rows, pos + n_virtual)  # (L, n_gathered, H)
            if pool == "mean" or pool == "sentence-mean":
                counts = np.diff(np.r_[seg_start, len(rows)])
                pooled = np.add.reduceat(gathered, seg_start, axis=1) / counts[None, :, None]
            else:
                pooled = gathered[:, seg_start]
            if out is None:
                out = np.zeros((len(layers), n_words, pooled.shape[-1]), dtype=np.float32)
            if pool in ("mean", "first", "last"):
                targets = np.fromiter((w0 for w0, _ in seg_words), dtype=np.int64)
                out[:, targets] = pooled
                done[targets] = True
            else:
                for j, (w0, w1) in enumerate(seg_words):
                    out[:, w0:w1] = pooled[:, j, None]
                    done[w0:w1] = True
    return out, done
