"""What the 05_generative solution does beyond its graded tests, checked fast (no notebook execution).

- the solution's diffusion pieces fit together: with the exact noise predictor of a
  one-point data set, ancestral DDPM sampling and DDIM both end exactly on that point,
  for the linear and the cosine schedule (a mistake in any of the schedule, q_sample or
  the reverse step would leave them elsewhere);
- the VAE's KL and negative ELBO agree with torch.distributions on random inputs;
- the Fréchet distance agrees with SciPy's matrix square root (another algorithm: Schur, on the
  non-symmetric product) on random covariances, and, through the notebook's feature_statistics,
  estimates the closed-form distance of two Gaussians from samples;
- flow matching fits together: the Euler sampler driven by the exact velocity field of a one-point
  data set ends exactly on that point for any number of steps, and the flow-matching loss of the
  exact velocity field of Gaussian data equals its closed-form value (the irreducible variance of
  the target), which needs the straight path, the velocity target and a uniform time all right;
- the sampling wrapper ClippedNoisePredictor leaves an exact noise predictor alone (its clean image
  lies in [-1, 1]) and otherwise returns noise whose implied clean image is clipped to [-1, 1];
- classifier-free guidance fits together with the Euler sampler: with the exact velocities of one-point
  data sets (one point for the unconditional model, one for the requested class), guided sampling ends
  on the unconditional point moved w times the way to the class's point, so w = 0 ignores the label,
  w = 1 lands on the class and w > 1 overshoots it; the conditional U-Net depends on its label;
- the RealNVP flow built from the solution's coupling layer is a normalized density: exp(log_prob)
  integrates to 1 over the plane (a wrong log-determinant would not), and sample() inverts forward();
- the project (issue 28): its checks cell grades the project the notebook sets up (name, metric,
  direction and budget agree).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from tests.assignments.project_cells import assert_checks_match_setup

NAME = "05_generative"


class PointOracle(nn.Module):
    """The exact noise predictor when all the data sits at one point."""

    def __init__(self, point, alpha_bars):
        super().__init__()
        self.point, self.alpha_bars = point, alpha_bars

    def forward(self, xt, t):
        alpha_bar = self.alpha_bars[t].view(-1, *[1] * (xt.dim() - 1))
        return (xt - alpha_bar.sqrt() * self.point) / (1 - alpha_bar).sqrt()


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_samplers_land_on_a_one_point_data_set(solution, schedule):
    torch.manual_seed(0)
    betas = solution["linear_betas"](100, 1e-3, 0.2) if schedule == "linear" else solution["cosine_betas"](100)
    alpha_bars = solution["alpha_bars_from_betas"](betas)
    point = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    oracle = PointOracle(point, alpha_bars)
    samples, _ = solution["ddpm_sample"](oracle, (64, 2), betas, alpha_bars)
    torch.testing.assert_close(samples, point.expand(64, 2), rtol=1e-6, atol=1e-6)
    samples = solution["ddim_sample"](oracle, (64, 2), alpha_bars, num_steps=10)
    torch.testing.assert_close(samples, point.expand(64, 2), rtol=1e-6, atol=1e-6)


def test_clipped_noise_predictor_keeps_exact_predictions_and_clips_the_rest(solution):
    torch.manual_seed(0)
    alpha_bars = solution["alpha_bars_from_betas"](solution["cosine_betas"](100))
    point = torch.full((1, 1, 4, 4), 0.6, dtype=torch.float64)
    oracle = PointOracle(point, alpha_bars)
    clipped = solution["ClippedNoisePredictor"](oracle, alpha_bars)
    t = torch.tensor([0, 37, 99])
    xt = torch.randn(3, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(clipped(xt, t), oracle(xt, t))
    samples, _ = solution["ddpm_sample"](clipped, (8, 1, 4, 4), solution["cosine_betas"](100), alpha_bars)
    torch.testing.assert_close(samples, point.expand(8, 1, 4, 4), rtol=1e-6, atol=1e-6)
    far = solution["ClippedNoisePredictor"](PointOracle(3 * point, alpha_bars), alpha_bars)  # a clean image outside [-1, 1]
    alpha_bar = alpha_bars[t].view(-1, 1, 1, 1)
    x0_hat = (xt - (1 - alpha_bar).sqrt() * far(xt, t)) / alpha_bar.sqrt()
    torch.testing.assert_close(x0_hat, torch.ones_like(xt))


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
def test_guided_euler_sampling_moves_from_the_unconditional_point_past_the_class(solution, scale):
    unconditional_point = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    class_points = torch.tensor([[1.0, -2.0], [-1.5, 0.5]], dtype=torch.float64)
    null_class = 2

    def model(x, t, labels):  # the exact velocity towards the point of each label (the null class: the unconditional point)
        points = torch.cat([class_points, unconditional_point])[labels]
        return (points - x) / (1 - t)[:, None]

    labels = torch.tensor([0, 1, 1, 0])
    velocity = lambda x, t: solution["guided_velocity"](model, x, t, labels, scale, null_class)
    samples = solution["euler_sample"](velocity, torch.randn(4, 2, dtype=torch.float64), 10)
    expected = unconditional_point + scale * (class_points[labels] - unconditional_point)
    torch.testing.assert_close(samples, expected, rtol=1e-9, atol=1e-9)


def test_label_dropout_rate_and_the_conditional_unet_uses_its_label(solution):
    torch.manual_seed(0)
    labels = torch.randint(0, 10, (200_000,))
    dropped = solution["drop_labels"](labels, 0.2, 10)
    assert abs((dropped == 10).double().mean().item() - 0.2) < 0.005
    assert torch.equal(dropped[dropped != 10], labels[dropped != 10])
    net = solution["ConditionalUNet"](10, channels=8, time_dim=16)
    x, t = torch.randn(2, 1, 14, 14), torch.tensor([3, 3])
    with torch.no_grad():
        out = net(x, t, torch.tensor([1, 10]))
        same = net(x, t, torch.tensor([1, 1]))
    assert out.shape == (2, 1, 14, 14)
    torch.testing.assert_close(out[0], same[0])  # one example's output does not depend on another's label
    assert (out[1] - same[1]).abs().max() > 1e-3  # the null class is a label of its own


def test_kl_and_negative_elbo_against_torch_distributions(solution):
    torch.manual_seed(0)
    mu, logvar = torch.randn(16, 8, dtype=torch.float64), 3 * torch.randn(16, 8, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    kl = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(solution["kl_to_standard_normal"](mu, logvar), kl)
    x = torch.rand(16, 1, 28, 28, dtype=torch.float64)
    logits = torch.randn_like(x)
    log_likelihood = torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(x).flatten(1).sum(1)
    loss, reconstruction, kl_mean = solution["negative_elbo"](x, logits, mu, logvar)
    torch.testing.assert_close(reconstruction, -log_likelihood.mean())
    torch.testing.assert_close(loss, (kl - log_likelihood).mean())


@pytest.mark.parametrize("d", [2, 10, 64])
def test_frechet_distance_against_scipy_sqrtm(solution, d):
    linalg = pytest.importorskip("scipy.linalg")
    generator = torch.Generator().manual_seed(d)
    a, b = torch.randn(d, d, generator=generator, dtype=torch.float64), torch.randn(d, d, generator=generator, dtype=torch.float64)
    cov1, cov2 = a @ a.T / d + 0.01 * torch.eye(d, dtype=torch.float64), b @ b.T / d
    mu1, mu2 = torch.randn(d, generator=generator, dtype=torch.float64), torch.randn(d, generator=generator, dtype=torch.float64)
    root = linalg.sqrtm(cov1.numpy() @ cov2.numpy())
    expected = ((mu1 - mu2) ** 2).sum().item() + torch.trace(cov1 + cov2).item() - 2 * float(root.trace().real)
    got = solution["frechet_distance"](mu1, cov1, mu2, cov2)
    assert isinstance(got, float)
    assert math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-8), (got, expected)


def test_frechet_distance_from_samples_of_two_gaussians(solution):
    # N(m1, diag(s1^2)) against N(m2, diag(s2^2)): d^2 = |m1 - m2|^2 + sum (s1 - s2)^2
    generator = torch.Generator().manual_seed(0)
    m1, m2 = torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    s1, s2 = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64), torch.tensor([1.5, 1.0, 0.5], dtype=torch.float64)
    x = m1 + s1 * torch.randn(200_000, 3, generator=generator, dtype=torch.float64)
    y = m2 + s2 * torch.randn(200_000, 3, generator=generator, dtype=torch.float64)
    got = solution["frechet_distance"](*solution["feature_statistics"](x), *solution["feature_statistics"](y))
    expected = ((m1 - m2) ** 2).sum().item() + ((s1 - s2) ** 2).sum().item()  # 3.25 + 1.25 = 4.5
    assert math.isclose(got, expected, abs_tol=0.05), (got, expected)
    same = solution["frechet_distance"](*solution["feature_statistics"](x), *solution["feature_statistics"](x))
    assert abs(same) < 1e-6, same


class PointVelocity(nn.Module):
    """The exact flow-matching velocity when all the data sits at one point: (point - x) / (1 - t)."""

    def __init__(self, point):
        super().__init__()
        self.point = point

    def forward(self, x, t):
        return (self.point - x) / (1 - t).view(-1, *[1] * (x.dim() - 1))


@pytest.mark.parametrize("num_steps", [1, 3, 20])
def test_euler_sampler_lands_on_a_one_point_data_set(solution, num_steps):
    torch.manual_seed(0)
    point = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    samples = solution["euler_sample"](PointVelocity(point), torch.randn(64, 2, dtype=torch.float64), num_steps)
    torch.testing.assert_close(samples, point.expand(64, 2), rtol=1e-9, atol=1e-9)


class GaussianVelocity(nn.Module):
    """The exact velocity E[x1 - x0 | x_t] when both the noise x0 and the data x1 are N(0, I):
    (2t - 1) x_t / ((1 - t)^2 + t^2)."""

    def forward(self, x, t):
        t = t.view(-1, *[1] * (x.dim() - 1))
        return (2 * t - 1) * x / ((1 - t) ** 2 + t**2)


def test_flow_matching_loss_of_the_exact_velocity_has_its_closed_form(solution):
    # the loss of the best predictor is E_t[Var(x1 - x0 | x_t)] = E_t[2 - (2t - 1)^2 / ((1 - t)^2 + t^2)]
    torch.manual_seed(0)
    x1 = torch.randn(400_000, 2, dtype=torch.float64)
    got = solution["flow_matching_loss"](GaussianVelocity(), x1).item()
    t = (torch.arange(100_000, dtype=torch.float64) + 0.5) / 100_000  # midpoint rule on [0, 1]
    expected = (2 - (2 * t - 1) ** 2 / ((1 - t) ** 2 + t**2)).mean().item()
    assert math.isclose(got, expected, abs_tol=0.01), (got, expected)
    # a velocity that ignores the input does worse: its loss is E||x1 - x0||^2 / d = 2
    zero = solution["flow_matching_loss"](lambda x, t: torch.zeros_like(x), x1).item()
    assert math.isclose(zero, 2.0, abs_tol=0.02) and zero > expected + 0.3, (zero, expected)


def test_realnvp_density_integrates_to_one_and_sampling_inverts_it(solution):
    torch.manual_seed(0)
    flow = solution["RealNVP"](num_layers=4, hidden=16).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(2.0)  # scales and shifts well away from the identity
    grid = torch.linspace(-10, 10, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    with torch.no_grad():
        density = flow.log_prob(torch.stack([xx.flatten(), yy.flatten()], dim=1)).exp()
    total = density.sum().item() * (grid[1] - grid[0]).item() ** 2
    assert math.isclose(total, 1.0, abs_tol=0.01), total
    z = torch.randn(100, 2, dtype=torch.float64)
    x = z
    with torch.no_grad():
        for layer in reversed(flow.layers):
            x = layer.inverse(x)
        torch.testing.assert_close(flow(x)[0], z)


def test_project_checks_grade_the_project_the_notebook_sets_up(sources, assignment):
    assert_checks_match_setup(sources(assignment), assignment, "val_fid", higher_is_better=False)
