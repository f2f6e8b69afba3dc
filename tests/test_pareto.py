"""Fronts, ranks, hypervolumes, seed aggregation and the pick rule, on plain data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnprune.pareto import (
    ALL_METHODS,
    Constraint,
    RunRecord,
    aggregate_seeds,
    analyse,
    default_objectives,
    hypervolume,
    non_dominated,
    pareto_ranks,
    pick,
    run_tags,
    step_line,
)


def brute_dominates(a: np.ndarray, b: np.ndarray, maximize: list[bool]) -> bool:
    better_or_equal = all((x >= y) if up else (x <= y) for x, y, up in zip(a, b, maximize, strict=True))
    strictly = any((x > y) if up else (x < y) for x, y, up in zip(a, b, maximize, strict=True))
    return better_or_equal and strictly


def brute_front(points: np.ndarray, maximize: list[bool]) -> list[bool]:
    return [not any(brute_dominates(q, p, maximize) for q in points) for p in points]


def brute_hypervolume(points: np.ndarray, reference: tuple[float, float], maximize: list[bool]) -> float:
    """Area of the union of the boxes [reference, point], summed cell by cell on the grid their
    corners make (independent of moocore's algorithm in `hypervolume`)."""
    signs = np.where(maximize, 1.0, -1.0)
    oriented, ref = points * signs, np.asarray(reference) * signs
    boxes = [p for p in oriented if (p > ref).all()]
    xs = sorted({ref[0], *(p[0] for p in boxes)})
    ys = sorted({ref[1], *(p[1] for p in boxes)})
    area = 0.0
    for (x0, x1), (y0, y1) in itertools.product(itertools.pairwise(xs), itertools.pairwise(ys)):
        if any(p[0] >= x1 and p[1] >= y1 for p in boxes):
            area += (x1 - x0) * (y1 - y0)
    return area


MAXIMIZE_CASES = [[True, True], [True, False], [False, False], [True, True, True], [True, False, True]]


@pytest.mark.parametrize("maximize", MAXIMIZE_CASES)
def test_front_and_ranks_match_brute_force_on_random_sets_with_ties(maximize: list[bool]) -> None:
    rng = np.random.default_rng(len(maximize) * 10 + sum(maximize))
    for trial in range(60):
        size = int(rng.integers(1, 25))
        # Few distinct values: ties in one coordinate and exact duplicates are common.
        points = rng.integers(0, 5, size=(size, len(maximize))).astype(float)
        if trial % 3 == 0:
            points = rng.random((size, len(maximize)))
        assert non_dominated(points, maximize).tolist() == brute_front(points, maximize)
        ranks = pareto_ranks(points, maximize)
        remaining = list(range(size))
        rank = 1
        while remaining:
            front = brute_front(points[remaining], maximize)
            expected = [i for i, keep in zip(remaining, front, strict=True) if keep]
            assert sorted(np.flatnonzero(ranks == rank).tolist()) == expected
            remaining = [i for i in remaining if i not in expected]
            rank += 1


def test_duplicates_share_the_front_and_single_points_are_their_own_front() -> None:
    points = np.array([[0.9, 0.5], [0.9, 0.5], [0.8, 0.5], [0.95, 0.4]])
    assert non_dominated(points, [True, True]).tolist() == [True, True, False, True]
    assert pareto_ranks(points, [True, True]).tolist() == [1, 1, 2, 1]
    assert non_dominated(np.array([[0.3, 0.2]]), [True, False]).tolist() == [True]
    assert non_dominated(np.zeros((0, 2)), [True, True]).tolist() == []


def test_hypervolume_hand_values() -> None:
    reference = (0.1, 0.0)  # chance accuracy on ten classes, dense
    assert hypervolume(np.array([[0.9, 0.5]]), reference, [True, True]) == pytest.approx(0.8 * 0.5)
    two = np.array([[0.9, 0.5], [0.5, 0.9]])
    # 0.8 x 0.5 + 0.4 x 0.9 - overlap 0.4 x 0.5
    assert hypervolume(two, reference, [True, True]) == pytest.approx(0.56)
    # A dominated point, a duplicate and a point worse than chance add nothing.
    more = np.vstack([two, [[0.5, 0.5], [0.9, 0.5], [0.05, 0.99]]])
    assert hypervolume(more, reference, [True, True]) == pytest.approx(0.56)
    assert hypervolume(np.zeros((0, 2)), reference, [True, True]) == 0.0
    # Minimised second objective: non-zero parameters against a dense count of 1000.
    params = np.array([[0.9, 400.0], [0.7, 100.0]])
    assert hypervolume(params, (0.1, 1000.0), [True, False]) == pytest.approx(0.8 * 600 + 0.6 * 300)


@pytest.mark.parametrize("maximize", [[True, True], [True, False], [False, True]])
def test_hypervolume_matches_brute_force(maximize: list[bool]) -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        points = rng.integers(0, 6, size=(int(rng.integers(1, 12)), 2)).astype(float) / 5
        reference = (0.2, 0.2) if maximize == [True, True] else (0.2, 0.8 if not maximize[1] else 0.2)
        if not maximize[0]:
            reference = (0.8, 0.2)
        expected = brute_hypervolume(points, reference, maximize)
        assert hypervolume(points, reference, maximize) == pytest.approx(expected, abs=1e-12)


def test_step_line_turns_at_the_worse_corner() -> None:
    points = np.array([[0.5, 0.9], [0.9, 0.5], [0.7, 0.7], [0.6, 0.6]])  # (sparsity, accuracy)
    assert step_line(points, [True, True]) == [(0.5, 0.9), (0.5, 0.7), (0.7, 0.7), (0.7, 0.5), (0.9, 0.5)]
    # x minimised (non-zero parameters): the line rises to the right.
    params = np.array([[100.0, 0.6], [400.0, 0.9]])
    assert step_line(params, [False, True]) == [(100.0, 0.6), (400.0, 0.6), (400.0, 0.9)]


def make_run(
    run_id: str, method: str, target: float, seed: int, accuracy: float, sparsity: float, **extra: float
) -> RunRecord:
    params = {
        "pruning.method": method,
        "pruning.target_sparsity": str(target),
        "seed": str(seed),
        "trial_hash": f"hash-{run_id}",  # differs per seed, as the real trial hash does
        "model.hidden_size": "16",
    }
    metrics = {
        "test_accuracy": accuracy,
        "sparsity": sparsity,
        "nonzero_params": 1000 * (1 - sparsity),
        **extra,
    }
    return RunRecord(run_id, "1", f"trial-{run_id}", params, metrics, {"method": method, "task": "seq_mnist"})


def test_seed_aggregation_groups_by_config_without_seed() -> None:
    runs = [
        make_run("a0", "global_magnitude", 0.9, 0, 0.90, 0.90),
        make_run("a1", "global_magnitude", 0.9, 1, 0.94, 0.90),
        make_run("b0", "global_magnitude", 0.5, 0, 0.97, 0.50),
        make_run("c0", "random", 0.9, 0, 0.60, 0.90),
        RunRecord("broken", "1", "broken", {"seed": "2"}, {"sparsity": 0.9}, {"method": "random"}),
    ]
    points = aggregate_seeds(runs, ["test_accuracy", "sparsity"])
    by_label = {p.label: p for p in points}
    assert set(by_label) == {"global_magnitude@0.9", "global_magnitude@0.5", "random@0.9"}
    pair = by_label["global_magnitude@0.9"]
    assert [r.run_id for r in pair.runs] == ["a0", "a1"]
    assert pair.mean["test_accuracy"] == pytest.approx(0.92)
    # Sample std (ddof=1): |0.94 - 0.90| / sqrt(2), not the population std's 0.02.
    assert pair.std["test_accuracy"] == pytest.approx(0.04 / np.sqrt(2))
    assert pair.std["sparsity"] == 0.0 and pair.n == 2
    one = by_label["random@0.9"]
    assert one.std["test_accuracy"] == 0.0 and one.n == 1  # one seed: no spread measured


def test_analysis_per_method_fronts_hypervolumes_and_tags() -> None:
    runs = [
        make_run("g50", "global_magnitude", 0.5, 0, 0.97, 0.50),
        make_run("g90", "global_magnitude", 0.9, 0, 0.93, 0.90),
        make_run("r50", "random", 0.5, 0, 0.95, 0.50),  # dominated by g50
        make_run("r90", "random", 0.9, 0, 0.60, 0.90),  # dominated by g90
        make_run("r95", "random", 0.95, 0, 0.30, 0.95),  # the sparsest: on the front
    ]
    analysis = analyse(runs, task="seq_mnist")
    assert analysis.reference == (0.1, 0.0)
    tags = run_tags(analysis, "sweep:s")
    assert {k for k, t in tags.items() if t["pareto"] == "true"} == {"g50", "g90", "r95"}
    assert tags["r50"]["pareto_rank"] == "2" and tags["r90"]["pareto_rank"] == "2"
    assert all(tags[r]["pareto_method"] == "true" for r in ("g50", "g90", "r50", "r90", "r95"))
    # global: (0.97-0.1)x0.5 + (0.93-0.1)x0.4; random: 0.85x0.5 + 0.5x0.4 + 0.2x0.05
    assert analysis.hypervolume["global_magnitude"] == pytest.approx(0.87 * 0.5 + 0.83 * 0.4)
    assert analysis.hypervolume["random"] == pytest.approx(0.85 * 0.5 + 0.5 * 0.4 + 0.2 * 0.05)
    assert analysis.hypervolume[ALL_METHODS] == pytest.approx(0.87 * 0.5 + 0.83 * 0.4 + 0.2 * 0.05)
    assert [p.label for p in analysis.front()] == [
        "global_magnitude@0.5",
        "global_magnitude@0.9",
        "random@0.95",
    ]
    assert analyse(runs, task="unknown_task").hypervolume == {}


def test_three_objectives_and_bad_objective_counts() -> None:
    runs = [
        make_run("a", "m", 0.5, 0, 0.9, 0.5, theoretical_speedup=1.5),
        make_run("b", "m", 0.5, 1, 0.9, 0.5, theoretical_speedup=1.2),  # same config as a: averaged
        make_run("c", "m", 0.9, 0, 0.8, 0.9, theoretical_speedup=1.1),
    ]
    analysis = analyse(runs, ("test_accuracy", "sparsity", "theoretical_speedup"))
    assert len(analysis.points) == 2 and analysis.rank == [1, 1]
    assert analysis.hypervolume == {}  # no task named: no chance accuracy, so no reference
    with pytest.raises(ValueError, match="two or three"):
        analyse(runs, ("test_accuracy",))


PICK_RUNS = [
    make_run("g50", "global_magnitude", 0.5, 0, 0.975, 0.50),
    make_run("g80", "global_magnitude", 0.8, 0, 0.972, 0.80),
    make_run("g90a", "global_magnitude", 0.9, 0, 0.950, 0.90),
    make_run("g90b", "global_magnitude", 0.9, 1, 0.970, 0.90),  # seed mean of g90: 0.960
    make_run("r80", "random", 0.8, 0, 0.971, 0.80),  # dominated by g80 (same sparsity)
    make_run("r95", "random", 0.95, 0, 0.400, 0.95),
]


def test_pick_highest_sparsity_at_an_accuracy() -> None:
    chosen = pick(PICK_RUNS, Constraint("min_quality", 0.97))
    assert chosen.point is not None and chosen.run is not None
    assert chosen.point.label == "global_magnitude@0.8" and chosen.run.run_id == "g80"
    # The g90 configuration meets 0.955 on average; of its seeds only g90b meets it alone.
    chosen = pick(PICK_RUNS, Constraint("min_quality", 0.955))
    assert chosen.point is not None and chosen.point.label == "global_magnitude@0.9"
    assert chosen.run is not None and chosen.run.run_id == "g90b"


def test_pick_highest_accuracy_at_a_sparsity_or_budget_and_never_a_dominated_run() -> None:
    chosen = pick(PICK_RUNS, Constraint("min_sparsity", 0.8))
    assert chosen.run is not None and chosen.run.run_id == "g80"  # not r80, which g80 dominates
    chosen = pick(PICK_RUNS, Constraint("max_params", 120))  # at most 12% of 1000 weights left
    assert chosen.run is not None and chosen.run.run_id == "g90b"
    for bound in np.linspace(0.3, 0.98, 30):
        result = pick(PICK_RUNS, Constraint("min_quality", float(bound)))
        assert result.run is None or result.run.run_id != "r80"


def test_pick_without_a_match_names_the_closest_front_points() -> None:
    chosen = pick(PICK_RUNS, Constraint("min_quality", 0.99))
    assert chosen.point is None and chosen.run is None
    assert chosen.closest[0].label == "global_magnitude@0.5"  # 0.975: nearest to 0.99
    assert all(p.label != "random@0.8" for p in chosen.closest)
    assert pick(PICK_RUNS, Constraint("max_params", 10)).run is None


def test_aliases_are_registry_safe() -> None:
    assert Constraint("min_quality", 0.97, "test_accuracy").alias() == "pick-acc0_97"
    assert Constraint("max_params", 20000).alias() == "pick-params20000"
    assert Constraint("max_params", 2e6).alias() == "pick-params2e06"


def test_pick_bounds_a_lower_is_better_quality_from_above() -> None:
    # Navigation: decoded error in cm, lower is better; "at least this good" is "at most".
    runs = [
        make_run(f"n{s}", "moduli", s, 0, 0.0, s, test_error_cm=error)
        for s, error in ((0.5, 8.0), (0.8, 9.5), (0.9, 12.0), (0.95, 40.0))
    ]
    chosen = pick(runs, Constraint("max_quality", 10.0, "test_error_cm"))
    assert chosen.run is not None and chosen.run.run_id == "n0.8"  # sparsest within 10 cm
    missed = pick(runs, Constraint("max_quality", 5.0, "test_error_cm"))
    assert missed.run is None and missed.closest[0].mean["test_error_cm"] == 8.0


def test_default_objectives_follow_the_task() -> None:
    assert default_objectives("navigation") == ("test_error_cm", "sparsity")
    assert default_objectives("adding") == ("test_mse", "sparsity")
    assert default_objectives("seq_mnist") == ("test_accuracy", "sparsity")
    assert default_objectives(None) == ("test_accuracy", "sparsity")  # runs of several tasks


def test_hypervolume_3d_hand_values() -> None:
    unit = np.array([[1.0, 1.0, 1.0]])
    assert hypervolume(unit, (0.0, 0.0, 0.0), [True, True, True]) == pytest.approx(1.0)
    # Two 2x1x1 boxes sharing the unit cube: 2 + 2 - 1.
    two = np.array([[2.0, 1.0, 1.0], [1.0, 2.0, 1.0]])
    assert hypervolume(two, (0.0, 0.0, 0.0), [True, True, True]) == pytest.approx(3.0)
    # A third along z: inclusion-exclusion 2+2+2 - 1-1-1 + 1; a duplicate adds nothing.
    three = np.vstack([two, [[1.0, 1.0, 2.0], [1.0, 1.0, 2.0]]])
    assert hypervolume(three, (0.0, 0.0, 0.0), [True, True, True]) == pytest.approx(4.0)
    # A minimised third objective (non-zero parameters under a budget of 10).
    assert hypervolume(np.array([[1.0, 1.0, 4.0]]), (0.0, 0.0, 10.0), [True, True, False]) == pytest.approx(
        6.0
    )


def test_analysis_reports_the_hypervolume_of_three_objectives() -> None:
    runs = [
        make_run("a", "m", 0.5, 0, 0.9, 0.5, theoretical_speedup=1.5),
        make_run("b", "m", 0.5, 1, 0.9, 0.5, theoretical_speedup=1.2),  # mean speed-up 1.35
        make_run("c", "m", 0.9, 0, 0.8, 0.9, theoretical_speedup=1.1),
    ]
    analysis = analyse(runs, ("test_accuracy", "sparsity", "theoretical_speedup"), task="seq_mnist")
    assert analysis.reference == (0.1, 0.0, 1.0)
    # Boxes 0.8x0.5x0.35 and 0.7x0.9x0.1 overlapping in 0.7x0.5x0.1.
    expected = 0.8 * 0.5 * 0.35 + 0.7 * 0.9 * 0.1 - 0.7 * 0.5 * 0.1
    assert analysis.hypervolume == {ALL_METHODS: pytest.approx(expected), "m": pytest.approx(expected)}


# (id, method, target, accuracy, speed-up at 1, speed-up at 64, deployable bytes)
SPEED_RUNS = [
    make_run(i, m, t, 0, a, t, speedup_b1=s1, speedup_b64=s64, model_bytes=b)
    for i, m, t, a, s1, s64, b in (
        ("g50", "global_magnitude", 0.5, 0.975, 1.0, 1.0, 330_000),
        ("n80", "neurons", 0.8, 0.960, 1.6, 2.9, 90_000),
        ("n95", "neurons", 0.95, 0.900, 2.4, 6.0, 25_000),
        ("r80", "random", 0.8, 0.950, 1.5, 2.0, 95_000),  # dominated by n80 on speed and bytes
    )
]


def test_measured_speed_and_size_are_objectives_with_neutral_references() -> None:
    analysis = analyse(SPEED_RUNS, ("test_accuracy", "speedup_b64", "model_bytes"), "seq_mnist")
    assert [o.maximize for o in analysis.objectives] == [True, True, False]
    assert [p.runs[0].run_id for p in analysis.front()] == ["g50", "n80", "n95"]
    # No reference for a file size (as for a parameter count): no hypervolume with it.
    assert analysis.reference is None and analysis.hypervolume == {}
    by_speed = analyse(SPEED_RUNS, ("test_accuracy", "speedup_b1"), "seq_mnist")
    assert by_speed.reference == (0.1, 1.0)  # chance accuracy, no speed-up
    assert by_speed.hypervolume["all"] > by_speed.hypervolume["random"] > 0


def test_pick_the_best_quality_at_a_measured_speed_up_or_file_size() -> None:
    chosen = pick(SPEED_RUNS, Constraint("min_speedup", 1.5))  # at batch 1
    assert chosen.run is not None and chosen.run.run_id == "n80"  # not r80, which n80 dominates
    chosen = pick(SPEED_RUNS, Constraint("min_speedup", 3.0, speedup_batch=64))
    assert chosen.run is not None and chosen.run.run_id == "n95"
    assert pick(SPEED_RUNS, Constraint("min_speedup", 3.0)).run is None  # nothing is 3x at batch 1
    chosen = pick(SPEED_RUNS, Constraint("max_bytes", 50_000))
    assert chosen.run is not None and chosen.run.run_id == "n95"
    missed = pick(SPEED_RUNS, Constraint("max_bytes", 10_000))
    assert missed.run is None and missed.closest[0].runs[0].run_id == "n95"
    # Runs from before trials measured speed have no such metric: they are never picked by it.
    old = make_run("old", "global_magnitude", 0.99, 0, 0.99, 0.99)
    assert pick([old], Constraint("min_speedup", 1.0)).closest == []


def test_speed_and_size_constraints_name_their_metric_and_alias() -> None:
    assert Constraint("min_speedup", 2).objectives("test_accuracy") == ("speedup_b1", "test_accuracy")
    assert Constraint("min_speedup", 2, speedup_batch=64).constrained_metric == "speedup_b64"
    assert Constraint("max_bytes", 5e4).objectives("val_accuracy") == ("model_bytes", "val_accuracy")
    assert Constraint("min_speedup", 2.5).alias() == "pick-speedup2_5"
    assert Constraint("min_speedup", 2, speedup_batch=64).alias() == "pick-speedup2-b64"
    assert Constraint("max_bytes", 50000).alias() == "pick-bytes50000"
    refusal = "^--speedup-batch: trials measure speed-ups at batch 1 and 64, not 8"
    with pytest.raises(ValueError, match=refusal):
        pick(SPEED_RUNS, Constraint("min_speedup", 2, speedup_batch=8))
