"""Model selection (``emkit.select``) and emEM short-run starts (``emkit.engine.starts``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

import emkit
from emkit import GaussianMixture, MixtureModel
from emkit.datasets import load_faithful, load_galaxies
from emkit.engine import ArrayData, EMConfig, fit
from emkit.engine.starts import best_of_short_runs, check_short_runs
from emkit.families.gaussian import Gaussian
from emkit.models.mixture import FamilyMixture
from emkit.select import SelectionResult, information_criteria, select


def three_clusters(seed: int = 0, n: int = 150) -> np.ndarray:
    """Three well-separated round clusters in 2-D (sd 1, centres 8 apart)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
    return np.vstack([c + rng.normal(size=(n, 2)) for c in centres])


@pytest.fixture(scope="module")
def faithful_selection() -> SelectionResult:
    return select(load_faithful().data, n_components=range(1, 6), random_state=0)


# --- choices on known data ----------------------------------------------------------------------
@pytest.mark.slow
def test_three_clear_clusters_give_k3():
    result = select(three_clusters(), n_components=range(1, 6), random_state=0)
    assert result.best.n_components == 3
    assert isinstance(result.best_estimator, GaussianMixture)
    assert result.best_estimator.n_components == 3
    for criterion in ("icl", "aic"):
        assert result.rows[result.ranking(criterion)[0]].n_components == 3


def test_old_faithful_picks_mclusts_model(faithful_selection):
    # mclust 5, summary(Mclust(faithful)): "EEE (ellipsoidal, equal volume, shape and
    # orientation) model with 3 components: log.likelihood -1126, n 272, df 11, BIC -2314"
    # (mclust's sign).  EEE is scikit-learn's "tied".
    best = faithful_selection.best
    assert (best.structure, best.n_components) == ("tied", 3)
    assert round(best.loglik) == -1126 and best.n_parameters == 11
    assert round(best.mclust_bic) == -2314 and best.bic == -best.mclust_bic
    # the runner-up, close behind, is the two-component full model (BIC 2322.19)
    second = faithful_selection.rows[faithful_selection.ranking()[1]]
    assert (second.structure, second.n_components) == ("full", 2)


def test_galaxies_selection_runs_and_flags_degenerate_fits():
    result = select(load_galaxies().data, random_state=0)
    assert 3 <= result.best.n_components <= 6
    assert not result.best.degenerate
    # one dimension: full, diag and spherical are the same model; only "full" is fitted
    assert {row.structure for row in result.rows} == {"full", "tied"}
    for row in result.rows:
        if row.degenerate:
            assert "reg_covar floor" in row.note


def test_a_point_far_out_collapses_a_component_and_is_not_chosen():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(size=200), 60.0][:, None]
    result = select(X, n_components=[1, 2], covariance_types=["full"], random_state=0)
    two = next(r for r in result.rows if r.n_components == 2)
    assert two.degenerate and two.bic < result.rows[0].bic  # the spike "wins" on BIC ...
    assert result.best.n_components == 1  # ... but is not chosen


def test_poisson_family_selection():
    rng = np.random.default_rng(2)
    X = np.r_[rng.poisson(2.0, 400), rng.poisson(15.0, 300)].astype(float)[:, None]
    result = select(X, n_components=[1, 2, 3], covariance_types=(), families=["poisson"],
                    random_state=0)
    assert [r.model for r in result.rows] == ["MixtureModel"] * 3
    assert result.best.n_components == 2 and result.best.structure == "poisson"
    assert isinstance(result.best_estimator, MixtureModel)


# --- the table ------------------------------------------------------------------------------------
def test_criteria_match_the_estimators_and_the_sign_convention(faithful_selection):
    X = load_faithful().data
    for row, est in zip(faithful_selection.rows, faithful_selection.estimators, strict=True):
        assert row.bic == pytest.approx(est.bic(X), rel=1e-10)
        assert row.aic == pytest.approx(est.aic(X), rel=1e-10)
        assert row.icl == pytest.approx(est.icl(X), rel=1e-10)
        assert row.mclust_bic == -row.bic
        assert row.icl >= row.bic - 1e-9
        assert row.loglik == pytest.approx(est.score(X) * X.shape[0], rel=1e-10)
        assert row.n_parameters == est.n_parameters()
        assert row.n_iter == est.n_iter_ and row.converged == est.converged_
        assert row.best_restart == est.best_restart_


def test_table_order_and_records(faithful_selection):
    rows = faithful_selection.rows
    assert [(r.structure, r.n_components) for r in rows[:6]] == [
        ("full", k) for k in range(1, 6)] + [("tied", 1)]
    assert len(rows) == 4 * 5
    records = faithful_selection.to_records()
    assert records[0]["structure"] == "full" and set(records[0]) >= {
        "model", "n_components", "loglik", "n_parameters", "bic", "aic", "icl", "mclust_bic",
        "converged", "n_iter", "best_restart"}


def test_to_text_marks_the_winner_and_states_the_signs(faithful_selection):
    text = faithful_selection.to_text()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["model", "K", "structure"]
    starred = [line for line in lines if line.startswith("*")]
    assert len(starred) == 1 and "tied" in starred[0]
    assert "lower is better" in text and "mclust BIC = 2ℓ − p·ln n: higher is better" in text
    assert str(faithful_selection) == text


def test_rich_rendering_and_data_frame(faithful_selection):
    from rich.console import Console
    from rich.table import Table

    table = faithful_selection.__rich__()
    assert isinstance(table, Table) and len(table.rows) == len(faithful_selection.rows)
    console = Console(record=True, width=160)
    console.print(faithful_selection)
    assert "mclust BIC" in console.export_text()
    pd = pytest.importorskip("pandas")
    frame = faithful_selection.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.shape[0] == 20


def test_other_criteria_rank_differently(faithful_selection):
    by_aic = faithful_selection.rows[faithful_selection.ranking("aic")[0]]
    assert by_aic.aic == min(r.aic for r in faithful_selection.rows)
    by_icl = faithful_selection.rows[faithful_selection.ranking("icl")[0]]
    assert by_icl.icl == min(r.icl for r in faithful_selection.rows if not r.degenerate)


def test_frequency_weights_equal_repeated_rows():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 2))
    w = rng.integers(1, 4, 60)
    repeated = np.repeat(X, w, axis=0)
    a = select(X, n_components=[1], sample_weight=w.astype(float), random_state=0)
    b = select(repeated, n_components=[1], random_state=0)
    assert a.n_samples == b.n_samples == w.sum()
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert ra.bic == pytest.approx(rb.bic, rel=1e-9)
        assert ra.icl == pytest.approx(rb.icl, rel=1e-9)


def test_information_criteria_helper():
    X = three_clusters()
    est = GaussianMixture(3, random_state=0).fit(X)
    crit = information_criteria(est, X)
    assert crit["bic"] == pytest.approx(est.bic(X)) and crit["n"] == X.shape[0]
    assert crit["icl"] == pytest.approx(crit["bic"] + 2 * crit["entropy"])


def test_failed_fits_become_rows_with_a_note():
    X = np.r_[np.zeros(3), np.ones(3)][:, None] + np.arange(6)[:, None] * 1e-3 - 0.5
    result = select(X, n_components=[1, 2], covariance_types=["full"], families=["poisson"],
                    random_state=0)  # negative values cannot be Poisson counts
    failed = [r for r in result.rows if not r.ok]
    assert [(r.structure, r.n_components) for r in failed] == [("poisson", 1), ("poisson", 2)]
    assert "failed" in failed[0].note and math.isnan(failed[0].bic)
    assert result.estimators[result.rows.index(failed[0])] is None
    assert result.best.ok
    assert "—" in result.to_text()


def test_reproducible_with_a_seed():
    X = three_clusters(1)
    a = select(X, n_components=[2, 3], covariance_types=["full", "diag"], random_state=7)
    b = select(X, n_components=[2, 3], covariance_types=["full", "diag"], random_state=7)
    assert a.to_records() == b.to_records()
    c = select(X, n_components=[2, 3], covariance_types=["full"],
               random_state=np.random.RandomState(3))
    assert len(c.rows) == 2


def test_progress_is_reported():
    calls = []
    select(three_clusters(), n_components=[1, 2], covariance_types=["diag", "tied"],
           random_state=0, progress=lambda i, total, row: calls.append((i, total, row.label)))
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"criterion": "dic"}, "criterion must be one of"),
        ({"n_components": [0, 1]}, "positive integers"),
        ({"n_components": []}, "positive integers"),
        ({"covariance_types": ["round"]}, "covariance"),
        ({"covariance_types": (), "families": None}, "nothing to select"),
        ({"families": ["gaussian-ish"]}, "family must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select(three_clusters(), **kwargs)


def test_plot(faithful_selection, tmp_path):
    from emkit.plotting import save_figure

    ax = faithful_selection.plot()
    assert len(ax.lines) == 4  # one line per covariance structure
    _, bic_full = ax.lines[0].get_data()
    np.testing.assert_allclose(bic_full, [r.bic for r in faithful_selection.rows[:5]])
    assert ax.get_ylabel() == "BIC (lower is better)"
    assert save_figure(ax.figure, tmp_path / "sel.png").read_bytes().startswith(b"\x89PNG")
    ax_aic = faithful_selection.plot(criterion="aic")
    assert ax_aic.get_ylabel().startswith("AIC")


# --- emEM starts ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CountingGMM(FamilyMixture):
    """A Gaussian mixture model that counts its ``init`` calls."""

    counter: list = None  # type: ignore[assignment]

    def init(self, data, rng):
        self.counter.append(1)
        return super().init(data, rng)


def counting_model(K: int = 3) -> CountingGMM:
    return CountingGMM(Gaussian("full"), K, n_features=2, counter=[])


def test_short_runs_start_from_the_best_short_run():
    data = ArrayData.of(load_faithful().data)
    model = counting_model()
    shorts = best_of_short_runs(model, data, EMConfig(), rng=np.random.default_rng(0),
                                n_runs=6, max_iter=4)
    assert len(model.counter) == 6
    assert len(shorts.objectives) == 6
    assert shorts.objective == max(shorts.objectives)
    assert shorts.objectives[shorts.best_run] == shorts.objective
    assert 6 <= shorts.n_estep <= 6 * 5


def test_fit_with_short_runs_counts_their_e_steps_and_keeps_the_user_start():
    data = ArrayData.of(load_faithful().data)
    model = counting_model()
    result = fit(model, data, EMConfig(max_iter=50), rng=np.random.default_rng(1), n_init=2,
                 short_runs=4, short_iter=3)
    assert len(model.counter) == 2 * 4
    assert len(result.restart_objectives) == 2
    assert result.objective == max(result.restart_objectives)
    assert result.n_estep > result.n_iter + 1  # the short runs' E-steps are counted
    # a given start seeds the first run as it is; only later runs use short runs
    model2 = counting_model()
    start = model2.init(data, np.random.default_rng(2))
    fit(model2, data, EMConfig(max_iter=5), rng=np.random.default_rng(1), n_init=2,
        init_params=start, short_runs=4)
    assert len(model2.counter) == 1 + 4


@pytest.mark.slow
def test_emem_finds_the_better_optimum_more_often():
    # Old Faithful, tied covariance, K=3: a single k-means++ start lands in a poor local
    # optimum (log-likelihood about -1140) for some seeds; the optimum is -1126.32.
    X = load_faithful().data
    seeds = range(6)

    def hits(**kwargs) -> int:
        lls = [GaussianMixture(3, covariance_type="tied", random_state=s, **kwargs).fit(X)
               .score(X) * X.shape[0] for s in seeds]
        return sum(ll > -1127.0 for ll in lls)

    plain, emem = hits(), hits(short_runs=5)
    assert plain < len(seeds) and emem == len(seeds), (plain, emem)


def test_estimators_expose_the_starts():
    X = load_faithful().data
    est = GaussianMixture(2, n_init=3, short_runs=2, random_state=0).fit(X)
    assert est.get_params()["short_runs"] == 2 and est.get_params()["short_iter"] == 5
    assert est.restart_objectives_.shape == (3,)
    assert est.restart_objectives_[est.best_restart_] == est.restart_objectives_.max()
    mix = MixtureModel("poisson", 2, n_init=2, short_runs=3, random_state=0)
    mix.fit(np.random.default_rng(0).poisson(3.0, (50, 1)).astype(float))
    assert mix.restart_objectives_.shape == (2,) and 0 <= mix.best_restart_ < 2


@pytest.mark.parametrize(("runs", "iters"), [(-1, 5), (1.5, 5), (2, 0), (True, 5)])
def test_short_run_settings_are_checked(runs, iters):
    with pytest.raises(ValueError, match="short_"):
        check_short_runs(runs, iters)
    with pytest.raises(ValueError, match="short_"):
        GaussianMixture(2, short_runs=runs, short_iter=iters).fit(three_clusters())


def test_select_is_exported():
    assert emkit.select is select


def test_estimator_criteria_take_frequency_weights(blobs) -> None:
    """Weight 2 on every row is the data twice over: ℓ, n and so every criterion double up."""
    gm = emkit.GaussianMixture(2, random_state=0).fit(blobs)
    twice = np.vstack([blobs, blobs])
    w = np.full(blobs.shape[0], 2.0)
    for name in ("bic", "aic", "icl"):
        weighted = getattr(gm, name)(blobs, sample_weight=w)
        assert weighted == pytest.approx(getattr(gm, name)(twice), rel=1e-12)
        assert weighted == pytest.approx(information_criteria(gm, blobs, w)[name])
    with pytest.raises(ValueError, match="sample_weight"):
        gm.bic(blobs, sample_weight=np.ones(3))


def test_one_criteria_module_names_a_bad_criterion() -> None:
    from emkit.criteria import check_criterion, criteria

    assert check_criterion("BIC") == "bic"
    with pytest.raises(ValueError, match=r"criterion must be one of \('bic', 'aic', 'icl'\)"):
        check_criterion("dic")
    values = criteria(loglik=-10.0, n=100, n_parameters=3, entropy=2.0)
    assert values["bic"] == pytest.approx(20.0 + 3 * np.log(100))
    assert values["icl"] == pytest.approx(values["bic"] + 4.0)
    assert values["aic"] == 26.0 and values["mclust_bic"] == -values["bic"]
