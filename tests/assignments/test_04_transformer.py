"""What the 04_transformer solution does beyond its graded tests, checked fast (no notebook execution).

- the solution's modules, run as plain Python, agree with PyTorch beyond what the
  notebook's tests cover: gradients of multi-head attention, float32 generation with
  and without the KV cache, attention in bfloat16 with a fully masked row.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

NAME = "04_transformer"


def _copy_mha(ours, theirs):
    d = ours.d_model
    with torch.no_grad():
        for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
            proj.weight.copy_(theirs.in_proj_weight[i * d:(i + 1) * d])
            proj.bias.copy_(theirs.in_proj_bias[i * d:(i + 1) * d])
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def test_mha_gradients_match_pytorch(solution):
    torch.manual_seed(0)
    ours = solution["MultiHeadAttention"](12, 3).double()
    theirs = torch.nn.MultiheadAttention(12, 3, batch_first=True, dtype=torch.float64)
    _copy_mha(ours, theirs)
    x = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 4, 12, dtype=torch.float64)
    grad_out = torch.randn(2, 5, 12, dtype=torch.float64)
    ours_grads = torch.autograd.grad(ours(x, memory, memory), (x, ours.q_proj.weight, ours.v_proj.bias), grad_out)
    out, _ = theirs(x, memory, memory)
    theirs_grads = torch.autograd.grad(out, (x, theirs.in_proj_weight, theirs.in_proj_bias), grad_out)
    torch.testing.assert_close(ours_grads[0], theirs_grads[0])
    torch.testing.assert_close(ours_grads[1], theirs_grads[1][:12])
    torch.testing.assert_close(ours_grads[2], theirs_grads[2][24:])


def test_cached_generation_matches_in_float32(solution):
    torch.manual_seed(0)
    gpt = solution["GPT"](vocab_size=20, block_size=24, d_model=32, n_heads=4, n_layers=2, dropout=0.0).eval()
    prompt = torch.randint(0, 20, (3, 5))
    plain = solution["generate"](gpt, prompt, 19, top_k=1)
    cached = solution["generate_cached"](gpt, prompt, 19, top_k=1)
    assert torch.equal(plain, cached)
    with pytest.raises(ValueError):
        solution["generate_cached"](gpt, prompt, 20)


def test_attention_in_bfloat16_with_a_fully_masked_row(solution):
    q, k, v = (torch.randn(2, 4, 8).bfloat16() for _ in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool)
    mask[0] = False
    out, weights = solution["scaled_dot_product_attention"](q, k, v, mask=mask)
    assert torch.isfinite(out.float()).all()
    assert (out[:, 0] == 0).all() and (weights[:, 0] == 0).all()
