"""What the 03_rnn solution does beyond its graded tests, checked fast (no notebook execution).

- the solution cells, run as plain Python, agree with PyTorch's own modules
  (nn.RNN, nn.LSTM) and build the truncated-BPTT layout the notebook describes.
"""

from __future__ import annotations

import torch

NAME = "03_rnn"


def test_rnn_by_hand_matches_nn_rnn(solution):
    torch.manual_seed(0)
    N, T, D, H = 2, 5, 3, 4
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    Wx, Wh, b = (torch.randn(*s, dtype=torch.float64) * 0.5 for s in [(D, H), (H, H), (H,)])
    rnn = torch.nn.RNN(D, H, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(Wx.T)
        rnn.weight_hh_l0.copy_(Wh.T)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
    out, _ = rnn(x, h0.unsqueeze(0))
    dout = torch.randn_like(out)
    out.backward(dout)
    h, cache = solution["rnn_forward"](x.detach(), h0.detach(), Wx, Wh, b)
    torch.testing.assert_close(h, out.detach())
    dx, dh0, dWx, dWh, db = solution["rnn_backward"](dout, cache)
    torch.testing.assert_close(dx, x.grad)
    torch.testing.assert_close(dh0, h0.grad)
    torch.testing.assert_close(dWh, rnn.weight_hh_l0.grad.T)


def test_lstm_by_hand_matches_nn_lstm(solution):
    torch.manual_seed(1)
    N, T, D, H = 2, 4, 3, 5
    x = torch.randn(N, T, D, dtype=torch.float64)
    state = (torch.randn(N, H, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64))
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    with torch.no_grad():
        h, (h_T, c_T) = solution["lstm_forward"](x, lstm.weight_ih_l0.T, lstm.weight_hh_l0.T, b, state)
        ref, (h_ref, c_ref) = lstm(x, tuple(s.unsqueeze(0) for s in state))
    torch.testing.assert_close(h, ref)
    torch.testing.assert_close(c_T, c_ref[0])


def test_tbptt_layout_and_detach(solution):
    data = torch.arange(41)
    batches = solution["tbptt_batches"](data, 4, 3)  # L = 10 -> 3, 3, 3, 1
    assert [tuple(i.shape) for i, _ in batches] == [(4, 3), (4, 3), (4, 3), (4, 1)]
    assert torch.equal(torch.cat([i for i, _ in batches], 1), data[:40].view(4, 10))
    assert torch.equal(torch.cat([t for _, t in batches], 1), data[1:41].view(4, 10))
    w = torch.ones(2, requires_grad=True)
    h, c = solution["detach_hidden"]((w * 2, w * 3))
    assert not h.requires_grad and not c.requires_grad


def test_char_lm_carries_state_and_probs_follow_temperature(solution):
    torch.manual_seed(2)
    model = solution["CharLM"](7, embed_dim=4, hidden_size=6)
    idx = torch.randint(0, 7, (2, 5))
    with torch.no_grad():
        whole, _ = model(idx)
        first, state = model(idx[:, :2])
        second, _ = model(idx[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    logits = torch.randn(7, dtype=torch.float64)
    probs = solution["next_char_probs"](logits, temperature=0.5, top_k=3)
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert int((probs > 0).sum()) == 3
