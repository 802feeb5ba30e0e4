"""What the 03_rnn solution does beyond its graded tests, checked fast (no notebook execution).

- the solution cells, run as plain Python, agree with PyTorch's own modules
  (nn.RNN, nn.LSTM, nn.GRUCell) and build the truncated-BPTT layout the notebook describes;
- the hand-written LSTM backward pass (one step and through time) equals autograd through nn.LSTM,
  the gradients into the initial state (h0, c0) included; the GRU step backward, chained through time,
  equals autograd through nn.GRU;
- the masked mean is a masked loss (equal to a loop over the real lengths, whatever the padding), and
  the name classifier gives each name the logits it gets alone, for all three recurrent cells;
- the seq2seq task spells numbers as the text says, and the provided Seq2Seq decodes a padded batch as it
  decodes each number alone (greedy, and beam search of width 1), so batched and one-by-one decoding compare;
- each autograd shortcut in mutants.toml is a real shortcut: without the guard it returns the solution's
  gradients, inside by_hand(..., AUTOGRAD) it raises, while the honest backward pass runs there unharmed;
  the same for the library-attention shortcut of additive_attention.
"""

from __future__ import annotations

import pytest
import torch

from dlcourse.instructor.authoring.mutants import read_mutants
from dlcourse.instructor.cells import solution_texts
from dlcourse.shortcuts import AUTOGRAD, ShortcutError, by_hand
from dlcourse.instructor.source import read_source
from tests.assignments.conftest import ROOT

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
        h, (h_T, c_T), _ = solution["lstm_forward"](x, lstm.weight_ih_l0.T, lstm.weight_hh_l0.T, b, state)
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


def test_char_lm_carries_state(solution):
    torch.manual_seed(2)
    model = solution["CharLM"](7, embed_dim=4, hidden_size=6)
    idx = torch.randint(0, 7, (2, 5))
    with torch.no_grad():
        whole, _ = model(idx)
        first, state = model(idx[:, :2])
        second, _ = model(idx[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


def _lstm_with_weights(D, H, seed):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        for p in lstm.parameters():
            p.uniform_(-0.8, 0.8)
    weights = (lstm.weight_ih_l0.detach().T, lstm.weight_hh_l0.detach().T,
               (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach())
    return lstm, weights


def test_lstm_backward_matches_autograd_through_nn_lstm(solution):
    N, T, D, H = 3, 6, 4, 5
    lstm, (Wx, Wh, b) = _lstm_with_weights(D, H, seed=3)
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    out, _ = lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    dout = torch.randn_like(out)
    out.backward(dout)
    h, _, cache = solution["lstm_forward"](x.detach(), Wx, Wh, b, (h0.detach(), c0.detach()))
    torch.testing.assert_close(h, out.detach())
    dx, dh0, dc0, dWx, dWh, db = solution["lstm_backward"](dout, cache)
    torch.testing.assert_close(dx, x.grad)
    torch.testing.assert_close(dh0, h0.grad)
    torch.testing.assert_close(dc0, c0.grad)
    torch.testing.assert_close(dWx, lstm.weight_ih_l0.grad.T)
    torch.testing.assert_close(dWh, lstm.weight_hh_l0.grad.T)
    torch.testing.assert_close(db, lstm.bias_ih_l0.grad)
    torch.testing.assert_close(db, lstm.bias_hh_l0.grad)  # the two biases get the same gradient


def test_lstm_step_backward_matches_autograd_of_the_step(solution):
    N, D, H = 4, 3, 2
    _, (Wx, Wh, b) = _lstm_with_weights(D, H, seed=4)
    inputs = [torch.randn(N, D, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64),
              torch.randn(N, H, dtype=torch.float64), Wx.clone(), Wh.clone(), b.clone()]
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    h, c, _ = solution["lstm_step_forward"](*leaves)
    dh, dc = torch.randn_like(h), torch.randn_like(c)
    ((h * dh).sum() + (c * dc).sum()).backward()
    _, _, cache = solution["lstm_step_forward"](*inputs)
    mine = solution["lstm_step_backward"](dh, dc, cache)
    for got, leaf in zip(mine, leaves):
        torch.testing.assert_close(got, leaf.grad)


def test_gru_step_matches_nn_gru_cell(solution):
    torch.manual_seed(5)
    cell = torch.nn.GRUCell(3, 4).double()
    with torch.no_grad():
        cell.bias_hh.normal_()
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        got = solution["gru_step_forward"](x, h, cell.weight_ih.T, cell.weight_hh.T, cell.bias_ih, cell.bias_hh)
        torch.testing.assert_close(got, cell(x, h))


def test_gru_step_backward_through_time_matches_nn_gru(solution):
    torch.manual_seed(8)
    N, T, D, H = 2, 5, 3, 4
    gru = torch.nn.GRU(D, H, batch_first=True).double()
    x = torch.randn(N, T, D, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(N, H, dtype=torch.float64, requires_grad=True)
    out, _ = gru(x, h0.unsqueeze(0))
    dout = torch.randn_like(out)
    out.backward(dout)
    weights = [p.detach() for p in (gru.weight_ih_l0.T, gru.weight_hh_l0.T, gru.bias_ih_l0, gru.bias_hh_l0)]
    states = [h0.detach()]
    with torch.no_grad():
        for t in range(T):
            states.append(solution["gru_step_forward"](x[:, t], states[-1], *weights))
    dx, dh, totals = [None] * T, torch.zeros(N, H, dtype=torch.float64), [0, 0, 0, 0]
    for t in reversed(range(T)):
        dx[t], dh, *step = solution["gru_step_backward"](dout[:, t] + dh, x[:, t].detach(), states[t], *weights)
        totals = [a + b for a, b in zip(totals, step)]
    torch.testing.assert_close(torch.stack(dx, 1), x.grad)
    torch.testing.assert_close(dh, h0.grad)
    for mine, ref in zip(totals, (gru.weight_ih_l0.grad.T, gru.weight_hh_l0.grad.T, gru.bias_ih_l0.grad,
                                  gru.bias_hh_l0.grad)):
        torch.testing.assert_close(mine, ref)


def test_masked_mean_is_a_masked_loss_whatever_the_padding(solution):
    torch.manual_seed(6)
    masked_mean = solution["masked_mean"]
    lengths = torch.tensor([4, 1, 6, 3])
    N, T, V = 4, 6, 5
    logits = torch.randn(N, T, V, dtype=torch.float64)
    targets = torch.randint(0, V, (N, T))
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (N, T)
    for n, length in enumerate(lengths.tolist()):
        losses[n, length:] = 1e6  # what sits in the padding must not matter
    by_loop = torch.stack([
        torch.nn.functional.cross_entropy(logits[n, :length], targets[n, :length])
        for n, length in enumerate(lengths.tolist())
    ])
    torch.testing.assert_close(masked_mean(losses, lengths), by_loop)
    wider = torch.cat([losses, torch.full((N, 3), -7.0, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(masked_mean(wider, lengths), by_loop)
    states = torch.randn(N, T, 3, dtype=torch.float64)
    expected = torch.stack([states[n, :length].mean(0) for n, length in enumerate(lengths.tolist())])
    torch.testing.assert_close(masked_mean(states, lengths), expected)


def test_name_classifier_reads_each_name_to_its_own_end(solution):
    NameClassifier, make_batch, encode_name = (solution[k] for k in ("NameClassifier", "make_batch", "encode_name"))
    batch = [("jo", 1), ("ojnathan", 0), ("maria", 1), ("zz" + "abc", 0)]
    for cell in ("rnn", "gru", "lstm"):
        torch.manual_seed(7)
        model = NameClassifier(cell=cell, embed_dim=4, hidden_size=5).double().eval()
        ids, lengths, labels = make_batch(batch, extra_padding=2)
        assert ids.shape == (4, 10) and lengths.tolist() == [2, 8, 5, 5] and labels.tolist() == [1, 0, 1, 0]
        with torch.no_grad():
            logits = model(ids, lengths)
            for n, (name, _) in enumerate(batch):
                alone, _, _ = make_batch([(name, 0)])
                torch.testing.assert_close(logits[n : n + 1], model(alone, torch.tensor([len(name)])))
                # and by hand, with no packing at all: the module run on the name alone
                out, hidden = model.rnn(model.embedding(encode_name(name)[None]))
                h_n = hidden[0] if cell == "lstm" else hidden
                torch.testing.assert_close(logits[n], model.head(torch.cat([h_n[-1], out.mean(1)], 1))[0])


def _backward_inputs(solution, exercise):
    """(the function's name, its arguments) for one call of a backward exercise, in float64."""
    torch.manual_seed(20)
    N, T, D, H = 2, 4, 3, 5
    x, h0, c0 = (torch.randn(N, T, D, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64),
                 torch.randn(N, H, dtype=torch.float64))
    rnn_weights = [0.5 * torch.randn(*shape, dtype=torch.float64) for shape in [(D, H), (H, H), (H,)]]
    lstm_weights = [0.5 * torch.randn(*shape, dtype=torch.float64) for shape in [(D, 4 * H), (H, 4 * H), (4 * H,)]]
    gru_weights = [0.5 * torch.randn(*shape, dtype=torch.float64) for shape in [(D, 3 * H), (H, 3 * H), (3 * H,), (3 * H,)]]
    dh_step, dh_all = torch.randn(N, H, dtype=torch.float64), torch.randn(N, T, H, dtype=torch.float64)
    if exercise == "rnn_step_backward":
        return exercise, (dh_step, solution["rnn_step_forward"](x[:, 0], h0, *rnn_weights)[1])
    if exercise == "rnn_backward":
        return exercise, (dh_all, solution["rnn_forward"](x, h0, *rnn_weights)[1])
    if exercise == "lstm_step_backward":
        cache = solution["lstm_step_forward"](x[:, 0], h0, c0, *lstm_weights)[2]
        return exercise, (dh_step, torch.randn(N, H, dtype=torch.float64), cache)
    if exercise == "lstm_backward":
        return exercise, (dh_all, solution["lstm_forward"](x, *lstm_weights, (h0, c0))[2])
    if exercise == "gru_step_backward":
        return exercise, (dh_step, x[:, 0], h0, *gru_weights)
    raise KeyError(exercise)


SOLUTION_IDS = set(solution_texts(read_source(ROOT / "notebooks" / NAME / f"{NAME}.py")))
SHORTCUTS = [m for m in read_mutants(ROOT / "autograder" / NAME / "mutants.toml", SOLUTION_IDS)
             if m.name.startswith("autograd")]


@pytest.mark.parametrize("mutant", SHORTCUTS, ids=[m.label for m in SHORTCUTS])
def test_each_autograd_shortcut_is_right_but_for_the_guard(solution, solution_cells, mutant):
    exercise, args = _backward_inputs(solution, mutant.grade_id)
    shortcut_scope = dict(solution)
    exec(compile(mutant.apply(solution_cells[mutant.grade_id]), mutant.label, "exec"), shortcut_scope)
    honest = solution[exercise](*args)
    for got, want in zip(shortcut_scope[exercise](*args), honest):
        torch.testing.assert_close(got, want)  # without the guard the shortcut would pass
    with by_hand(exercise, AUTOGRAD):
        for got, want in zip(solution[exercise](*args), honest):
            torch.testing.assert_close(got, want)  # the honest backward pass needs no autograd
        with pytest.raises(ShortcutError, match=exercise):
            shortcut_scope[exercise](*args)


def test_every_backward_exercise_has_an_autograd_shortcut_mutant():
    assert {m.grade_id for m in SHORTCUTS} >= {"rnn_step_backward", "rnn_backward", "lstm_step_backward", "lstm_backward"}


def test_number_words_spells_numbers_as_the_seq2seq_task_says(solution):
    number_words = solution["number_words"]
    assert number_words(0) == ["zero"]
    assert number_words(17) == ["seventeen"]
    assert number_words(70) == ["seventy"]
    assert number_words(110) == ["one", "hundred", "ten"]
    assert number_words(4207) == ["four", "thousand", "two", "hundred", "seven"]
    assert number_words(9999) == ["nine", "thousand", "nine", "hundred", "ninety", "nine"]
    words = solution["WORDS"]
    assert words[solution["BOS"]] == "<bos>" and words[solution["EOS"]] == "<eos>"
    longest = max(len(number_words(n)) for n in range(10000))
    assert longest + 1 == solution["MAX_WORDS"]  # the longest output and its <eos>


def test_seq2seq_decodes_a_padded_batch_as_each_number_alone(solution):
    """The notebook compares batched greedy decoding with beam search one number at a time: padding the
    source (numbers of different lengths) must not change what the translator writes."""
    number_batch, greedy_decode, beam_search = (solution[k] for k in ("number_batch", "greedy_decode", "beam_search"))
    torch.manual_seed(9)
    model = solution["Seq2Seq"](len(solution["DIGITS"]), len(solution["WORDS"]), embed_dim=8, hidden_size=6,
                                attn_size=5).double().eval()

    def step(tokens, state):
        return model.decode_step(tokens, state)[:2]

    numbers = [7, 4207, 31, 999]
    bos, eos, max_len = solution["BOS"], solution["EOS"], solution["MAX_WORDS"]
    with torch.no_grad():
        digits, lengths, _ = number_batch(numbers)
        batch_words, batch_scores = greedy_decode(step, model.encode(digits, lengths), bos, eos, max_len)
        for n, words, score in zip(numbers, batch_words, batch_scores):
            digits1, lengths1, _ = number_batch([n])
            alone_words, alone_scores = greedy_decode(step, model.encode(digits1, lengths1), bos, eos, max_len)
            assert alone_words[0] == words
            torch.testing.assert_close(alone_scores[0], score)
            beam_words, beam_score = beam_search(step, model.encode(digits1, lengths1), bos, eos, max_len, 1)
            assert list(beam_words) == words  # width 1 is greedy decoding
            torch.testing.assert_close(torch.tensor(beam_score, dtype=torch.float64), score)


def test_library_attention_shortcut_is_right_but_for_the_guard(solution, solution_cells):
    mutant = next(m for m in read_mutants(ROOT / "autograder" / NAME / "mutants.toml", SOLUTION_IDS)
                  if m.label.startswith("additive_attention.library-attention"))
    shortcut_scope = dict(solution)
    exec(compile(mutant.apply(solution_cells["additive_attention"]), mutant.label, "exec"), shortcut_scope)
    torch.manual_seed(10)
    query, keys = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 5, 6, dtype=torch.float64)
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 1])[:, None]
    weights = [torch.randn(*shape, dtype=torch.float64) for shape in [(4, 7), (6, 7), (7,)]]
    honest = solution["additive_attention"](query, keys, mask, *weights)
    for got, want in zip(shortcut_scope["additive_attention"](query, keys, mask, *weights), honest):
        torch.testing.assert_close(got, want)  # without the guard the shortcut would pass
    # what the notebook's test cell switches off (LIBRARY_ATTENTION there)
    library = ("torch.nn.functional.scaled_dot_product_attention", "torch._C._nn.scaled_dot_product_attention",
               "torch.nn.MultiheadAttention", "torch.nn.functional.multi_head_attention_forward")
    with by_hand("additive_attention", library):
        for got, want in zip(solution["additive_attention"](query, keys, mask, *weights), honest):
            torch.testing.assert_close(got, want)
        with pytest.raises(ShortcutError, match="additive_attention"):
            shortcut_scope["additive_attention"](query, keys, mask, *weights)


def test_project_reference_compares_the_cells_at_equal_size(solution):
    """The project's reference gives each cell the largest hidden size within the parameter limit, so the
    three models it compares have (nearly) the same number of parameters, none over the limit."""
    CellLM, largest, count = (solution[k] for k in ("CellLM", "largest_hidden_size", "parameter_count"))
    limit, vocab_size = solution["PARAMETER_LIMIT"], 27
    sizes = {}
    for cell in ("rnn", "gru", "lstm"):
        hidden = largest(cell, vocab_size)
        sizes[cell] = count(CellLM(cell, vocab_size, hidden))
        assert sizes[cell] <= limit < count(CellLM(cell, vocab_size, hidden + 1))
    assert max(sizes.values()) - min(sizes.values()) < 0.02 * limit
