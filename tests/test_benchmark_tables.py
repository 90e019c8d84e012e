"""The leave-one-out benchmark's tables keep rows of different preset versions apart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import leave_one_out as loo
import training_runs


def _run(seed: int, ndcg: float, digest: str | None, date: str) -> dict:
    metrics = {f"test/{k}": ndcg for k in (*loo.METRICS, "MRR")} | {"valid/NDCG@10": ndcg + 0.01, "events_per_s": 100.0}
    rec = {"model": "sasrec", "seed": seed, "metrics": metrics, "epochs_run": 5, "epochs_cap": 30, "best_epoch": 2}
    rec |= {"stopped_early": True, "ran_on": "cpu (2 cores)", "date": date}
    return rec | ({"preset_digest": digest} if digest else {})


def test_runs_of_another_preset_version_get_their_own_row_newest_first() -> None:
    old = _run(0, 0.04, None, "2026-11-20") | {"dataset": "beauty"}
    new = [_run(s, n, "abcd1234", "2026-11-23") | {"dataset": "beauty"} for s, n in ((1, 0.05), (2, 0.06))]
    table = loo._table([old, *new], None)
    rows = [line for line in table if line.startswith("| sasrec")]
    assert rows[0].startswith("| sasrec (preset abcd1234) | 1,2 |") and "0.0550 ± 0.0071" in rows[0]
    assert rows[1].startswith("| sasrec (earlier preset) | 0 |") and "0.0400" in rows[1]
    # the preset as it is now comes first even when another version ran the same day
    now = loo.preset_digest("sasrec", "beauty")
    same_day = [_run(3, 0.03, now, "2026-11-23"), _run(4, 0.07, "abcd1234", "2026-11-23")]
    rows = [line for line in loo._table([r | {"dataset": "beauty"} for r in same_day], None) if "| sasrec" in line]
    assert rows[0].startswith(f"| sasrec (preset {now}) | 3 |")
    # one version only: the plain model name, every seed averaged
    (single,) = [line for line in loo._table(new, None) if line.startswith("| sasrec")]
    assert single.startswith("| sasrec | 1,2 |")


def test_runs_of_older_model_code_get_their_own_row_even_alone() -> None:
    now = loo.preset_digest("sasrec", "beauty")
    older = _run(0, 0.04, now, "2026-11-23") | {"dataset": "beauty", "code_before": "abc1234: a fix"}
    current = _run(0, 0.05, now, "2026-11-22") | {"dataset": "beauty"}
    rows = [line for line in loo._table([older, current], None) if line.startswith("| sasrec")]
    assert rows[0].startswith(f"| sasrec (preset {now}) | 0 |")  # the current code first, though older by date
    assert rows[1].startswith(f"| sasrec (preset {now}, before abc1234: a fix) | 0 |")
    (alone,) = [line for line in loo._table([older], None) if line.startswith("| sasrec")]
    assert alone.startswith(f"| sasrec (preset {now}, before abc1234: a fix) |")


def test_the_digest_names_the_resolved_preset() -> None:
    beauty = loo.preset_digest("sasrec", "beauty")
    assert len(beauty) == 8 and beauty == loo.preset_digest("sasrec", "beauty")
    assert beauty != loo.preset_digest("sasrec", "sports") != loo.preset_digest("llama", "sports")


def test_options_added_later_leave_the_digest_alone_at_their_old_behaviour(monkeypatch) -> None:
    base = loo.preset_digest("sasrec", "beauty")
    preset, extra = loo.preset_for("sasrec", "beauty")
    for key, neutral in loo.DIGEST_NEUTRAL.items():
        value = "null" if neutral is None else neutral
        monkeypatch.setattr(loo, "preset_for", lambda m, d, o=f"{key}={value}": (preset, [*extra, o]))
        assert loo.preset_digest("sasrec", "beauty") == base
    monkeypatch.setattr(loo, "preset_for", lambda m, d: (preset, [*extra, "model.residual=normed"]))
    assert loo.preset_digest("sasrec", "beauty") != base


def test_the_rectools_note_describes_our_loss_only_for_the_current_preset() -> None:
    rec = {"model": "sasrec", "dataset": "beauty", "preset": "sasrec-beauty", "overrides": [], "commit": "abc1234"}
    current = loo._loss_words(rec | {"preset_digest": loo.preset_digest("sasrec", "beauty")})
    assert current == "dot-product logits, 256 negatives drawn per position"
    assert "commit abc1234 (an earlier version)" in loo._loss_words(rec | {"preset_digest": "00000000"})


def test_resume_reruns_a_run_whose_preset_changed() -> None:
    current = loo.preset_digest("sasrec", "beauty")
    rec = _run(1, 0.05, current, "2026-11-23") | {"dataset": "beauty"}
    assert loo.has_current_record([rec], "beauty", "sasrec", 1, "cpu")
    assert not loo.has_current_record([rec], "beauty", "sasrec", 2, "cpu")  # another seed
    assert not loo.has_current_record([rec], "beauty", "sasrec", 1, "gpu")  # another device kind
    assert not loo.has_current_record([rec | {"preset_digest": "00000000"}], "beauty", "sasrec", 1, "cpu")
    assert not loo.has_current_record([rec | {"metrics": {}}], "beauty", "sasrec", 1, "cpu")  # failed / not run


def test_rectools_throughput_table_pairs_the_rounds_and_takes_the_median_ratio() -> None:
    import rectools_throughput as rt

    def side(model: str, k: int, order: int, speed: float) -> dict:
        return {
            "dataset": "beauty", "model": model, "round": k, "order": order, "metrics": {"events_per_s": speed,
            "peak_rss_mb": 1000.0}, "preset": "sasrec-beauty", "preset_digest": "abcd1234", "hardware": "cpu x",
            "commit": "c0ffee1", "date": "2026-11-23", "steps": 40, "threads": 1,
        }  # fmt: skip

    rows = [side("sasrec", 0, 0, 1000.0), side("rectools-sasrec", 0, 1, 100.0)]
    rows += [side("rectools-sasrec", 1, 0, 50.0), side("sasrec", 1, 1, 1000.0)]
    rows += [side("sasrec", 2, 0, 900.0)]  # a round without its RecTools half: not paired
    text = rt.markdown(rows)
    assert "| 0 | ours | 1,000 | 100 | 10.00x |" in text
    assert "| 1 | RecTools | 1,000 | 50 | 20.00x |" in text
    assert "| 2 |" not in text
    assert "Median ratio over 2 round(s): **15.00x**" in text


def test_rectools_gets_the_sizes_loss_and_optimiser_of_our_preset() -> None:
    from argusrec.config import load_config

    cfg = load_config("sasrec-sports", ["model.dim=128", "loss.uniform_negatives=64"])
    cmd = loo.rectools_command("py", cfg, Path("d"), Path("o"), seed=3, threads=1)
    args = dict(zip(cmd[2::2], cmd[3::2], strict=True))
    assert cmd[:2] == ["py", str(Path(loo.__file__).parent / "rectools_sasrec.py")]
    assert args["--dim"] == "128" and args["--negatives"] == "64" and args["--lr"] == str(cfg.optim.lr)
    assert (args["--blocks"], args["--heads"], args["--max-len"]) == ("1", "1", "50")
    assert (args["--batch-size"], args["--dropout"], args["--seed"]) == ("128", "0.2", "3")


def test_bsarec_is_benchmarked_on_amazon_only_and_counts_one_target_per_training_event(tmp_path: Path) -> None:
    import numpy as np

    assert loo.supported("bsarec", "beauty") and loo.supported("bsarec", "sports")
    assert not loo.supported("bsarec", "ml-100k") and loo.supported("sasrec", "ml-100k")
    assert loo.preset_for("bsarec", "beauty") == ("bsarec-beauty", [])
    (tmp_path / "events").mkdir()
    np.save(tmp_path / "events" / "offsets.npy", np.array([0, 5, 7, 15]))  # users of 5, 2 and 8 events
    # leave-one-out keeps 3, 2 (too short to split) and 6 training events
    assert loo.train_targets(tmp_path, 50, "last") == 2 + 1 + 5
    assert loo.train_targets(tmp_path, 50, "all") == 2 + 1 + 5  # one chunk each: the same count
    assert loo.train_targets(tmp_path, 2, "all") == 2 + 1 + 4  # chunks of 3 events: the 6 give 2 + 2 targets


def test_cpu_memory_table_pairs_the_settings_of_each_round() -> None:
    import cpu_memory as cm

    def side(every: str, k: int, order: int, rss: float, speed: float) -> dict:
        return {
            "dataset": "beauty", "model": "bsarec-beauty", "preset": "bsarec-beauty", "release_memory_every": every,
            "round": k, "order": order, "metrics": {"events_per_s": speed, "peak_rss_mb": rss},
            "hardware": "cpu x", "commit": "c0ffee1", "date": "2026-11-23", "steps": 600, "threads": 1,
        }  # fmt: skip

    rows = [side("null", 0, 0, 4000.0, 1000.0), side("50", 0, 1, 1000.0, 900.0)]
    rows += [side("50", 1, 0, 1200.0, 1000.0), side("null", 1, 1, 3000.0, 1000.0)]
    rows += [side("null", 2, 0, 5000.0, 1000.0)]  # a round without its other half: not paired
    text = cm.markdown(rows)
    assert "| 0 | never | 4,000 / 1,000 | 1,000 / 900 | 0.25x | 0.90x |" in text
    assert "| 1 | every 50 | 3,000 / 1,200 | 1,000 / 1,000 | 0.40x | 1.00x |" in text
    assert "| 2 |" not in text
    assert "peak RSS **0.33x**, training throughput **0.95x** (every 50 / never)" in text
    # runs compared with another N form their own table
    other = [side("null", 0, 0, 4000.0, 1000.0) | {"paired_with": "500"}, side("500", 0, 1, 2000.0, 1000.0)]
    text = cm.markdown(rows + other)
    assert "every 500 steps" in text and "| 0 | never | 4,000 / 2,000 | 1,000 / 1,000 | 0.50x | 1.00x |" in text


def test_epoch_cap_is_max_epochs_without_a_time_budget_and_fits_the_budget_with_one(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "events").mkdir()
    np.save(tmp_path / "events" / "offsets.npy", np.array([0, 1003]))  # one user: 1,001 training events, 1,000 targets
    args = argparse.Namespace(time_budget=float("inf"), max_epochs=40, device="cpu", threads=1, workdir=str(tmp_path))
    runner = loo.Runner(args, [])
    runner.tps[("sasrec", "amazon")] = 100.0  # 10 s per epoch
    assert runner.epoch_cap("sasrec", "beauty", tmp_path, 50, "last") == (40, 10.0)
    args.time_budget = loo.OVERHEAD_S + 95.0
    assert runner.epoch_cap("sasrec", "beauty", tmp_path, 50, "last") == (9, 10.0)
    args.time_budget = 1.0  # below the overhead: still one epoch
    assert runner.epoch_cap("sasrec", "beauty", tmp_path, 50, "last") == (1, 10.0)


def test_rectools_is_compared_with_the_run_it_was_trained_against() -> None:
    old = _run(0, 0.01, None, "2026-11-20") | {"dataset": "ml-100k", "epochs_run": 1, "commit": "a", "seconds": 9.0}
    new = _run(0, 0.05, None, "2026-11-24") | {"dataset": "ml-100k", "epochs_run": 40, "commit": "b", "seconds": 99.0}
    other_seed = new | {"seed": 1}
    rt = {"model": "rectools-sasrec", "seed": 0, "epochs_run": 40, "metrics": {"test/NDCG@10": 0.04}}
    rows = [old, new, other_seed]
    assert loo.rectools_pair(rows, rt) is new  # an older record: the same seed and epochs
    named = rt | {"paired_with": {k: old.get(k) for k in loo.PAIR_KEYS}}
    assert loo.rectools_pair(rows, named) is old  # a newer record names its run
    assert loo.rectools_pair([other_seed], rt) is None


def test_every_tuning_grid_entry_resolves_to_a_valid_config(tmp_path: Path) -> None:
    import tune_presets as tp

    from argusrec.config import load_config

    every_kind = [("sasrec", "beauty"), ("hstu", "sports"), ("fuxi", "beauty"), ("llama", "sports")]
    uses = {  # the (model, dataset) pairs each grid is run with (refine's block options are SASRec's own)
        "refine": [("sasrec", "sports")],
        "bsarec": [("bsarec", "beauty")],
        "bsarec-hparams": [("bsarec", "beauty"), ("bsarec", "sports")],
        "movielens": [("sasrec", "ml-100k"), ("hstu", "ml-latest-small")],
    }
    for grid, entries in tp.GRIDS.items():
        for model, dataset in uses.get(grid, every_kind):
            preset, extra = loo.preset_for(model, dataset)
            for label, overrides in entries:
                kept, dropped = tp.overrides_for(model, dataset, tmp_path, overrides)
                cfg = load_config(preset, [*extra, f"data.path={tmp_path}", *kept])  # raises if invalid
                assert cfg.model.kind == model, (grid, label)
                assert not dropped or model not in ("sasrec", "bsarec"), (grid, label, dropped)  # they take every key


def test_rectools_keeps_each_users_last_window_of_training_events(tmp_path: Path) -> None:
    import numpy as np
    import rectools_sasrec as rs

    (tmp_path / "events").mkdir()
    np.save(tmp_path / "events" / "offsets.npy", np.array([0, 5, 7, 60]))  # users of 5, 2 and 53 events
    np.save(tmp_path / "events" / "item_id.npy", np.arange(1, 61))
    users, _, role, _ = rs.load_split(tmp_path, min_events=3)
    # training events: 3, 2 (too short to split) and 51; RecTools keeps the last max_len + 1 of each
    assert rs.targets_per_epoch(users, role, 3, 50) == (3 - 1) + (2 - 1) + (51 - 1)
    assert rs.targets_per_epoch(users, role, 3, 2) == (3 - 1) + (2 - 1) + (3 - 1)
    assert loo.train_targets(tmp_path, 2, "all") == 2 + 1 + 34  # ours: all 51, in 17 chunks of 3


def test_a_reduced_rectools_run_is_compared_on_validation_at_its_epoch() -> None:
    ours = _run(0, 0.032, None, "2026-11-24") | {"dataset": "sports", "epochs_run": 9, "commit": "b", "seconds": 9.0}
    ours |= {"valid_curve": [[0, 0.0128], [1, 0.026], [2, 0.0334], [3, 0.0375]]}
    ours["metrics"]["peak_rss_mb"] = 1000.0
    rt = {"model": "rectools-sasrec", "seed": 0, "epochs_run": 3, "reduced_from": 9, "loss": "sampled_softmax"}
    rt |= {"library": "rectools 0.19.0", "paired_with": {k: ours.get(k) for k in loo.PAIR_KEYS}}
    rt |= {"metrics": {"test/NDCG@10": 0.016, "valid/NDCG@10": 0.0167, "events_per_s": 50.0, "peak_rss_mb": 2000.0}}
    ratio = loo._ndcg_ratio(ours, rt)
    # after 3 epochs: our curve's point 2 (epochs count from 0), not our best-epoch test number
    assert ratio.startswith("validation NDCG@10 after 3 epochs = 0.0334 / 0.0167 = **2.00x**")
    assert "ours 0.0320 (best of 9 epochs on validation), theirs 0.0160 (after 3)" in ratio
    assert "no NDCG ratio" in loo._ndcg_ratio(ours | {"valid_curve": [[0, 0.01]]}, rt)
    full = rt | {"epochs_run": 9, "reduced_from": None}
    assert loo._ndcg_ratio(ours, full) == "test NDCG@10 = 0.0320 / 0.0160 = **2.00x**"
    (line,) = [x for x in loo._rectools([ours | {"preset": "sasrec-sports", "overrides": []}, rt]) if "same sizes" in x]
    assert "same sizes and 3 of our run's 9 epochs (a reduced run)" in line
    assert loo.how_it_ended(rt) == "fixed, reduced from 9"
    hw = {"hardware": "cpu A"}
    assert "same machine" in loo._when_words(ours | hw, rt | hw)  # no date on the RecTools side: as recorded
    apart = loo._when_words(ours | hw, rt | {"date": "2026-11-25", "hardware": "cpu B"})
    assert apart.startswith("The two were measured on different days (ours 2026-11-24 on cpu A; RecTools 2026-11-25")


def test_rectools_epochs_must_be_positive(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["leave_one_out.py", "--rectools-epochs", "0"])
    with pytest.raises(SystemExit) as stop:
        loo.main()
    assert stop.value.code == 2 and "--rectools-epochs: 0 is not a positive number" in capsys.readouterr().err


def test_an_adopted_run_shows_the_tuning_runs_conditions() -> None:
    own = {"note_run": "CPU, 2 runs at a time"}
    adopted = {"note_run": "adopted the tuning runs", "adopted_from": {"note_run": "CPU, 1 thread, beside another"}}
    assert loo.run_conditions(own) == "CPU, 2 runs at a time"
    assert loo.run_conditions(adopted) == "CPU, 1 thread, beside another"
    assert loo.run_conditions({"adopted_from": {"grid": "g"}, "note_run": "n"}) == "n"  # tuning run without a note
    assert loo.run_conditions({}) is None


def test_the_rectools_ratio_says_how_the_training_targets_compare() -> None:
    assert loo._targets_words({}) == "training targets per epoch not recorded"
    same = loo._targets_words({"targets_per_epoch": {"ours": 1200, "rectools": 1200}})
    assert same == "the same 1,200 training targets per epoch"
    fewer = loo._targets_words({"targets_per_epoch": {"ours": 97009, "rectools": 83290}})
    assert "ours 97,009, RecTools 83,290" in fewer and "last max_len + 1" in fewer


def test_tuning_rows_on_an_earlier_preset_stay_apart_and_come_after() -> None:
    import tune_presets as tp

    now = loo.preset_digest("sasrec", "ml-100k")
    base = {"model": "sasrec", "dataset": "ml-100k", "seed": 0, "grid_overrides": [], "commit": "abc1234"}

    def run(label: str, ndcg: float, digest: str | None) -> dict:
        rec = base | {"label": label, "metrics": {tp.MONITOR: ndcg}}
        return rec | ({"preset_digest": digest} if digest else {})

    old, new, legacy = run("preset", 0.07, "00000000"), run("preset", 0.12, now), run("preset", 0.11, None)
    assert tp.row_label(old, now) == "preset (earlier preset 00000000)"
    assert tp.row_label(new, now) == tp.row_label(legacy, now) == "preset"  # no digest stored: taken as today's
    later = old | {"seed": 1, "commit": "def5678"}  # another seed of the same entry on that version, a later commit
    rows = tp._by_label([old, run("preset-drop0.3", 0.05, now), new, later])
    assert list(rows) == ["preset", "preset-drop0.3", "preset (earlier preset 00000000)"]
    assert rows["preset (earlier preset 00000000)"] == [old, later]
    rerun = old | {"commit": "0a0a0a0", "metrics": {tp.MONITOR: 0.08}}  # seed 0 again: it stands for that seed
    assert tp._by_label([old, later, rerun])["preset (earlier preset 00000000)"] == [rerun, later]
    assert rows["preset"] == [new] and tp.selected([old, new])[1] == [new]


def test_valid_curve_reads_every_evaluation_of_a_run(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,step,valid/HR@10,valid/NDCG@10\n0,10,0.1,0.0412345\n2,30,0.2,0.05\n")
    assert training_runs.valid_curve(metrics) == [[0, 0.04123], [2, 0.05]]
    assert training_runs.valid_curve(tmp_path / "missing.csv") == []


def test_older_preset_versions_of_the_same_day_follow_the_order_their_records_were_written() -> None:
    """Neither version is today's preset and both ran the same day: the later-written one is the newer version
    (the one the "Our SASRec" line quotes)."""
    first = [_run(s, 0.03, "aaaa1111", "2026-11-23") | {"dataset": "sports"} for s in (0, 1)]
    later = [_run(2, 0.04, "bbbb2222", "2026-11-23") | {"dataset": "sports"}]
    assert [suffix for suffix, _ in loo._variants(first + later)] == [" (preset bbbb2222)", " (preset aaaa1111)"]
    assert [suffix for suffix, _ in loo._variants(later + first)] == [" (preset aaaa1111)", " (preset bbbb2222)"]


def test_the_feedback_table_shows_the_user_fit_reference_without_an_aim_verdict() -> None:
    import argus_pretrain as ap

    def rec(model: str, auc: float, **metrics: float | None) -> dict:
        m = {"test/FP_AUC/like": auc, "test/FP_NE/like": 0.9} | metrics
        return {"dataset": ap.SIM, "model": model, "metrics": m, "preset": ap.QUALITY_PRESET, "epochs_run": 3} | {
            "epochs_cap": 3,
            "preset_epochs": 10,
        }

    by = {
        (ap.SIM, "argus-simplified"): rec("argus-simplified", 0.7, **{"test/FP_AUC_gap_closed/like": 0.5}),
        (ap.SIM, ap.USER_FIT): rec(
            ap.USER_FIT,
            0.75,
            **{
                "test/FP_AUC_gap_closed/like": 0.75,
                "user_fit/half_life_days": 28.0,
                "user_fit/valid_mean_AUC/inf": 0.7,
                "user_fit/valid_mean_AUC/28": 0.71,
            },
        ),
    }
    pop, orc = rec("popularity", 0.6), rec("oracle", 0.8)
    text = "\n".join(ap._fp_table(by, pop, orc))
    assert "| signal | metric | popularity | argus-simplified | gap closed | user-fit | gap closed | oracle |" in text
    assert "| like | AUC | 0.6000 | 0.7000 | 50% | 0.7500 | 75% | 0.8000 |" in text
    assert "argus-simplified: FP AUC gap closed like 50% — misses" in text
    assert "user-fit: FP AUC" not in text  # a reference gets no verdict on the aim
    assert "half-life 28 days, chosen on validation among 28, inf" in text


def test_the_taste_table_places_each_predictor_in_the_popularity_to_oracle_gap() -> None:
    import argus_pretrain as ap

    def rec(model: str, metrics: dict) -> dict:
        return {"dataset": ap.SIM, "model": model, "metrics": metrics}

    known = {"taste-0d/test/FP_AUC/like": 0.78, "taste-7d/test/FP_AUC/like": 0.7, "core/test/FP_AUC/like": 0.75}
    by = {(ap.SIM, ap.KNOWN_TASTE): rec(ap.KNOWN_TASTE, known), (ap.SIM, ap.USER_FIT): rec(ap.USER_FIT, {})}
    text = "\n".join(
        ap._taste_table(by, rec("popularity", {"test/FP_AUC/like": 0.6}), rec("oracle", {"test/FP_AUC/like": 0.8}))
    )
    assert "| oracle: the true taste of each event's day | 100% |" in text
    assert "| the true taste on the period's first day (no later drift) | 90% |" in text
    assert "| the true taste 7 days before the period's first day | 50% |" in text
    assert "| the true static core of the taste (no drift) | 75% |" in text
    assert "| user-fit:" not in text  # no metrics, no row


def test_a_rerun_of_the_same_seed_and_preset_stands_for_that_seed() -> None:
    first = _run(0, 0.03, "abc", "2026-11-24") | {"dataset": "ml-100k", "stopped_by_time_limit": True}
    other_seed = _run(1, 0.05, "abc", "2026-11-24") | {"dataset": "ml-100k"}
    rerun = _run(0, 0.04, "abc", "2026-11-24") | {"dataset": "ml-100k"}
    groups = loo._variants([first, other_seed, rerun])
    assert [[r["metrics"]["test/NDCG@10"] for r in runs] for _, runs in groups] == [[0.05, 0.04]]


def test_a_continued_run_says_so_where_the_table_says_how_it_ended() -> None:
    now = loo.preset_digest("sasrec", "beauty")
    continued = _run(0, 0.05, now, "2026-11-24") | {"dataset": "beauty", "continued_from": {"epoch": 3}}
    (row,) = [line for line in loo._table([continued], None) if line.startswith("| sasrec")]
    assert "5/30 (2) early stop, continued |" in row
    assert loo.how_it_ended({"model": "rectools-sasrec"}) == "fixed"
    assert loo.how_it_ended({"model": "sasrec", "stopped_by_time_limit": True, "stopped_early": True}) == "time limit"


def test_the_summary_shows_only_the_current_preset_and_judges_the_papers_orderings(monkeypatch) -> None:
    monkeypatch.setattr(loo, "preset_digest", lambda m, d: "now00000")
    monkeypatch.setattr(loo, "recipe_differences", lambda a, b, d: ["optim.lr 0.001/0.0005"] if a == "hstu" else [])
    gpu = {"ran_on": "cuda (1 of H100)"}

    def run(model: str, seed: int, ndcg: float, **extra) -> dict:
        return _run(seed, ndcg, "now00000", "2026-11-24") | {"dataset": "sports", "model": model} | extra

    records = [
        run("sasrec", 0, 0.0300),
        run("sasrec", 1, 0.0320),
        run("sasrec", 1, 0.0310),  # a re-run of seed 1 stands for it
        run("sasrec", 2, 0.0500, preset_digest="old00000"),  # an earlier preset: left out
        run("sasrec", 3, 0.0500, code_before="abc1234: a fix"),  # older model code: left out
        run("sasrec", 0, 0.0400, **gpu),
        run("hstu", 0, 0.0200, stopped_by_time_limit=True),
        run("hstu", 1, 0.0220),
        run("hstu", 0, 0.0500, **gpu),
        run("fuxi", 0, 0.0215),
        run("llama", 0, 0.0600, **gpu),
        run("hstu-large", 0, 0.0250),
    ]
    lines = loo._summary(records)

    def cell(model: str, column: int = 2) -> str:  # column 2: sports
        return next(line for line in lines if line.startswith(f"| {model} |")).split(" | ")[column]

    assert cell("sasrec") == "0.0305 ± 0.0007 (0.0405; 2); 0.0400 (0.0500; 1, GPU)"  # seeds 0 and 1 (its re-run)
    assert cell("hstu") == "0.0210 ± 0.0014† (0.0310; 2); 0.0500 (0.0600; 1, GPU)"  # † a time-limited run
    assert cell("llama") == "0.0600 (0.0700; 1, GPU)"
    assert cell("hstu-large") == "0.0250 (0.0350; 1)"
    assert cell("fuxi-large") == "—" and cell("bsarec", 3) == "n/a"  # BSARec: Amazon only
    checks = [line for line in lines if line.startswith("- ")]
    # CPU and GPU means are judged apart; the CPU HSTU mean falls short but is a lower bound
    assert checks[0] == (
        "- hstu ≥ sasrec: sports: 0.0210† (2) vs 0.0305 (2), does not hold so far (the lower side is a lower "
        "bound) [presets differ: optim.lr 0.001/0.0005]."
    )
    assert checks[1] == (
        "- hstu ≥ sasrec (GPU): sports: 0.0500 (1) vs 0.0400 (1), holds (one seed each) [presets differ: "
        "optim.lr 0.001/0.0005]."
    )
    assert checks[2] == "- fuxi ≥ hstu: sports: 0.0215 (1) vs 0.0210† (2), holds, within one seed std [same recipe]."
    # the large variants against their base models (the papers' size step); no fuxi-large run: no line
    assert checks[3] == "- hstu-large ≥ hstu: sports: 0.0250 (1) vs 0.0210† (2), holds [same recipe]."
    assert len(checks) == 4  # no GPU FuXi run: no GPU line for fuxi >= hstu


def test_an_ordering_verdict_weighs_the_gap_against_the_seeds_spread() -> None:
    assert loo._verdict((0.030, 0.001, 3, False), (0.020, 0.001, 3, False)) == "holds"
    assert loo._verdict((0.020, 0.001, 3, False), (0.030, 0.001, 3, False)) == "**does not hold**"
    assert loo._verdict((0.0295, 0.001, 3, False), (0.030, 0.001, 3, False)) == "does not hold, within one seed std"
    assert loo._verdict((0.020, 0.0, 1, False), (0.030, 0.0, 1, False)) == "does not hold (one seed each)"
    # a lower bound that falls short leaves the question open; one that comes out ahead does not
    assert loo._verdict((0.020, 0.001, 3, True), (0.030, 0.001, 3, False)).startswith("does not hold so far")
    assert loo._verdict((0.030, 0.001, 3, True), (0.020, 0.001, 3, False)) == "holds"


def test_recipe_differences_name_the_settings_two_presets_do_not_share(monkeypatch) -> None:
    from argusrec.config import load_config

    preset, extra = loo.preset_for("sasrec", "beauty")
    base = load_config(preset, extra)
    other = {"sasrec": [], "hstu": ["optim.lr=0.002", "model.dropout=0.3"], "llama": ["model.kind=llama"]}
    monkeypatch.setattr(loo, "preset_for", lambda m, d: (preset, [*extra, *other[m]]))
    assert loo.recipe_differences("hstu", "sasrec", "beauty") == [
        f"model.dropout 0.3/{base.model.dropout}",
        f"optim.lr 0.002/{base.optim.lr}",
    ]
    assert loo.recipe_differences("llama", "sasrec", "beauty") == []  # the block kind is the model, not the recipe


def test_the_scaling_table_names_each_runs_learning_rate() -> None:
    import argus_pretrain as ap

    def rec(model: str, nip: float, overrides: list[str], lr: float | None) -> dict:
        m = {"test/NIP_loss": nip, "test/FP_AUC/like": 0.7, "test/NDCG@10": 0.2, "events_per_s": 1000.0}
        return {"dataset": ap.SIM, "model": model, "preset": model, "metrics": m, "overrides": overrides, "lr": lr} | {
            "epochs_run": 6,
            "epochs_cap": 6,
            "epochs_wanted": 6,
            "preset_epochs": 10,
            "ended": "equal epochs",
        }

    text = "\n".join(
        ap._scaling_table(
            [
                rec("argus-1m", 6.5, [], None),
                rec("argus-3m", 6.4, ["train.epochs=6"], 1e-3),
                rec("argus-30m", 6.3, ["optim.lr=3e-4", "train.epochs=6"], 3e-4),
            ]
        )
    )
    assert "| argus-1m | — | — | — | 6.5000 |" in text  # stored no lr: not guessed from today's preset
    assert "| argus-3m | — | — | 0.001 | 6.4000 |" in text  # the preset's own lr (no parameters stored: dashes)
    assert "| argus-30m | — | — | 0.0003 (set) | 6.3000 |" in text  # a --set override is marked
    assert "Test NIP loss improves with every size step" in text


def test_a_scaling_size_keeps_the_learning_rate_with_the_lowest_valid_loss_not_test() -> None:
    import argus_pretrain as ap

    def run(lr: float, valid: float, test: float) -> dict:
        m = {"valid/NIP_loss": valid, "test/NIP_loss": test, "test/FP_AUC/like": 0.7, "events_per_s": 1.0}
        return {"dataset": ap.SIM, "model": ap.sweep_name("argus-3m", lr), "preset": "argus-3m", "lr": lr} | {
            "metrics": m,
            "overrides": [f"optim.lr={lr:g}"],
            "epochs_run": 6,
            "epochs_cap": 6,
            "preset_epochs": 10,
            "ended": "equal epochs",
        }

    grid = [1e-3, 3e-4, 1e-4]
    records = [run(1e-3, 6.47, 6.40), run(3e-4, 6.42, 6.45)]
    assert ap.select_lr(records, ap.SIM, "argus-3m", grid) is None  # 1e-4 has not run yet
    records.append(run(1e-4, 6.44, 6.30))  # the best test loss, but not the best valid loss
    best = ap.select_lr(records, ap.SIM, "argus-3m", grid)
    assert best is not None and best["model"] == "argus-3m" and best["lr"] == 3e-4
    assert best["selected_from"] == {"argus-3m@lr=0.001": 6.47, "argus-3m@lr=0.0003": 6.42, "argus-3m@lr=0.0001": 6.44}
    assert "| argus-3m | — | — | 0.0003 (best of 3 on valid) | 6.4500 |" in "\n".join(ap._scaling_table([best]))
    table = "\n".join(ap._lr_grid_table([*records, best]))
    assert "| preset | lr 0.001 | lr 0.0003 | lr 0.0001 |" in table
    assert "| argus-3m | 6.4700 (6.4000) | **6.4200 (6.4500)** | 6.4400 (6.3000) |" in table


def test_lr_grid_options_are_parsed_and_bad_ones_named() -> None:
    import argus_pretrain as ap

    assert ap.lr_grid_item("argus-3m=1e-3,3e-4") == ("argus-3m", [1e-3, 3e-4])
    assert ap.lr_grid_item("argus-30m=1e-4") == ("argus-30m", [1e-4])
    for bad in ("argus-3m", "argus-3m=", "argus-3m=fast", "=1e-3", "argus-3m=-1e-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected PRESET=LR"):
            ap.lr_grid_item(bad)
    with pytest.raises(SystemExit):  # argparse names the option and exits with a usage error
        ap.main(["--lr-grid", "argus-3m=fast"])


def test_the_scaling_plot_title_says_how_the_sizes_were_trained() -> None:
    import argus_pretrain as ap

    equal = [{"ended": "equal epochs", "epochs_run": 6, "preset_epochs": 10, "date": d} for d in ("2026-11-24", "x")]
    assert ap._plot_label(equal) == "6 epochs each, presets 10"
    assert ap._plot_label([*equal, {"ended": "time guard"}]).startswith("REDUCED run")
    assert ap._plot_label([{"ended": "early stop"}]) == "presets' full training"
    assert ap._dates(equal[:1]) == "2026-11-24"
    assert ap._dates([{"date": "2026-11-25"}, {"date": "2026-11-24"}]) == "2026-11-24 to 2026-11-25"


def test_a_grid_point_stopped_by_its_time_limit_is_marked_as_a_lower_bound() -> None:
    import argus_pretrain as ap

    def run(lr: float, valid: float, ended: str, epochs: int) -> dict:
        return {"dataset": ap.SIM, "model": ap.sweep_name("argus-30m", lr), "preset": "argus-30m", "lr": lr} | {
            "metrics": {"valid/NIP_loss": valid, "test/NIP_loss": valid},
            "ended": ended,
            "epochs_run": epochs,
        }

    records = [run(1e-4, 6.43, "equal epochs", 6), run(3e-5, 6.49, "time guard", 5)]
    best = ap.select_lr(records, ap.SIM, "argus-30m", [1e-4, 3e-5])
    assert best is not None
    table = "\n".join(ap._lr_grid_table([*records, best]))
    assert "| argus-30m | **6.4300 (6.4300)** | 6.4900 (6.4900) † 5 ep. |" in table
    assert "† stopped before the grid's epochs" in table


def test_a_denser_scaling_simulation_gets_its_own_dataset_section_and_plot() -> None:
    import argus_pretrain as ap

    assert ap.scaling_dataset(3_000_000, None) == ap.SIM
    dense = ap.scaling_dataset(3_000_000, 3_000)
    assert dense == "simulated-3000000-events-3000-items" and ap.is_scaling_only(dense)
    assert not ap.is_scaling_only(ap.SIM) and not ap.is_scaling_only("ml-100k")
    assert ap.plot_path(ap.SIM) == ap.PLOT
    assert ap.plot_path(dense).name == "argus_scaling-3000000-events-3000-items.png"

    data = {"events": 3_000_000, "users": 20_000, "items": 3_000}
    base = {"dataset": dense, "seed": 0, "hardware": "h", "commit": "c", "device": "cuda", "date": "2026-11-25"}
    pop = base | {"model": "popularity", "metrics": {"test/NIP_loss": 7.0}, "data": data}
    pop |= {"split": {"train_events": 2_550_000, "test_targets": 300_000}}
    run = base | {"model": "argus-tiny", "preset": "argus-tiny", "lr": 3e-3, "overrides": []}
    run |= {"metrics": {"test/NIP_loss": 6.0, "test/FP_AUC/like": 0.7, "events_per_s": 1.0}, "parameters": {}}
    run |= {"epochs_run": 6, "epochs_cap": 6, "preset_epochs": 10, "ended": "equal epochs"}
    text = ap.markdown([pop, run])
    assert f"### Scaling on a denser simulation (`{dense}`)" in text
    assert "3,000,000 events, 20,000 users, 3,000 items; 2,550,000 training events (850 per item)" in text
    assert "| argus-tiny | — | — | 0.003 | 6.0000 |" in text
    assert "### Simulated data" not in text  # the quality runs' section only appears with their records


def _bench(tmp_path, monkeypatch, records: list[dict], **args):
    """A Bench whose training, baselines and data are stubs: what scaling() trains and keeps, without training."""

    import argus_pretrain as ap

    ns = argparse.Namespace(
        **{
            "workdir": str(tmp_path), "device": "cpu", "deadline": float("inf"), "events": 1000, "seed": 0,
            "scaling_items": None, "scaling_epochs": 6, "scaling_budget": 100.0, "skip": "",
            "set": [], "note": "", "threads": None, **args,
            "lr_grid": [ap.lr_grid_item(g) for g in args.get("lr_grid", [])],  # as argparse's type leaves them
        }
    )  # fmt: skip
    bench = ap.Bench(ns, records)
    trained: list[tuple[str, str, list[str]]] = []
    valid = {"0.001": 6.47, "0.0003": 6.42, "0.0001": 6.44}

    def train(dataset, data, model, preset, variant, extra, **kw):
        trained.append((dataset, model, list(extra)))
        lr = model.split("@lr=")[1] if "@lr=" in model else "0.001"
        rec = {"dataset": dataset, "model": model, "preset": preset, "lr": float(lr)}
        rec["metrics"] = {"valid/NIP_loss": valid.get(lr), "test/NIP_loss": 6.0}
        bench.put(rec)
        return rec

    monkeypatch.setattr(bench, "train", train)
    monkeypatch.setattr(bench, "baselines", lambda *a, **k: None)
    import report

    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")  # the real merge-on-write, into a scratch file
    monkeypatch.setattr(report, "_SEEN", {})
    monkeypatch.setattr(ap, "render", lambda records: None)
    monkeypatch.setattr(bench, "scaling_terms", lambda q, data: (["data.max_len=256"], 6))
    monkeypatch.setattr(ap, "simulated_data", lambda work, events, seed, items=None: tmp_path / f"sim-{items}")
    return bench, trained


def test_the_scaling_part_trains_each_grid_rate_on_its_own_data_and_keeps_the_valid_best(tmp_path, monkeypatch):
    import argus_pretrain as ap

    stale = {"dataset": ap.SIM, "model": "argus-3m", "same_run_as": "argus-simplified", "metrics": {"x": 1}}
    bench, trained = _bench(tmp_path, monkeypatch, [stale], lr_grid=["argus-3m=1e-3,3e-4,1e-4"], scaling_items=300)
    bench.scaling("argus-3m", ["argus-tiny", "argus-3m"], None, shared_run=False)
    dense = ap.scaling_dataset(1000, 300)
    assert [(d, m) for d, m, _ in trained] == [
        (dense, "argus-tiny"),
        (dense, "argus-3m@lr=0.001"),
        (dense, "argus-3m@lr=0.0003"),
        (dense, "argus-3m@lr=0.0001"),
    ]
    assert trained[2][2] == ["data.max_len=256", "optim.lr=0.0003"]
    kept = {(r["dataset"], r["model"]): r for r in bench.records}
    assert kept[(dense, "argus-3m")]["lr"] == 3e-4 and kept[(dense, "argus-3m")]["selected_from"]
    assert (ap.SIM, "argus-3m") in kept  # the quality data's records are another dataset's: untouched

    # on the quality runs' data, a shared 3-epoch record must not stand in for a --scaling-epochs run
    bench, trained = _bench(tmp_path, monkeypatch, [stale])
    bench.scaling("argus-3m", ["argus-3m"], tmp_path, shared_run=False)
    assert [(d, m) for d, m, _ in trained] == [(ap.SIM, "argus-3m")]
    assert not any(r.get("same_run_as") for r in bench.records)


def test_an_incomplete_grid_leaves_the_size_not_run_and_a_diverged_rate_ranks_last(tmp_path, monkeypatch):
    import argus_pretrain as ap

    old = {"dataset": ap.SIM, "model": "argus-1m", "metrics": {"test/NIP_loss": 6.0}, "lr": 1e-3}
    bench, _ = _bench(tmp_path, monkeypatch, [old], lr_grid=["argus-1m=1e-3,3e-2"])  # 3e-2: no valid loss (None)
    bench.scaling("argus-3m", ["argus-1m"], tmp_path, shared_run=False)
    (rec,) = [r for r in bench.records if r["model"] == "argus-1m"]
    assert rec["lr"] == 1e-3 and set(rec["selected_from"]) == {"argus-1m@lr=0.001", "argus-1m@lr=0.03"}

    def skip_one(dataset, data, model, *a, **k):
        bench.not_run(dataset, model, "deadline")

    bench, _ = _bench(tmp_path, monkeypatch, [old], lr_grid=["argus-1m=1e-3,3e-4"])
    monkeypatch.setattr(bench, "train", skip_one)
    bench.scaling("argus-3m", ["argus-1m"], tmp_path, shared_run=False)
    (rec,) = [r for r in bench.records if r["model"] == "argus-1m"]
    assert rec.get("not_run", "").startswith("a rate of its learning-rate grid did not run")


def test_rerun_and_skip_names_reach_a_presets_grid_runs() -> None:
    import argus_pretrain as ap

    assert ap.named("argus-3m@lr=0.0003", "argus-3m")
    assert ap.named("argus-3m", "argus-1m,argus-3m")
    assert not ap.named("argus-30m@lr=0.0001", "argus-3m")
    assert not ap.named("argus-3m", "")


def test_a_grid_and_a_set_learning_rate_for_the_same_preset_are_refused() -> None:
    import argus_pretrain as ap

    with pytest.raises(SystemExit, match="the grid sets the learning rate"):
        ap.main(["--lr-grid", "argus-3m=1e-3,3e-4", "--set", "argus-3m:optim.lr=3e-4", "--only", "scaling"])
    with pytest.raises(SystemExit, match="the grid sets the learning rate"):
        ap.main(["--lr-grid", "argus-3m=1e-3", "--set", "optim.lr=3e-4"])  # a --set for every run reaches it too


def test_a_run_on_other_simulated_data_is_named_under_the_data_line() -> None:
    import argus_pretrain as ap

    split = {"events": 3_000_000, "users": 20_000, "train_events": 2_550_000, "test_targets": 300_000}
    base = {"model": "popularity", "seed": 0, "split": split}
    base |= {"data": {"events": 3_000_000, "users": 20_000, "items": 30_000}}
    same = {"model": "argus-3m", "seed": 0, "split": dict(split)}
    small = {"model": "argus-tiny", "seed": 0, "split": split | {"events": 20_000, "train_events": 17_000}}
    lines = ap._data_line([base, same, small])
    assert lines[0].startswith("Data: `argusrec data simulate` seed 0, 3,000,000 events")
    assert lines[1] == "**Not on this data** (compare them with nothing above): argus-tiny (20,000 events)."
    assert len(ap._data_line([base, same])) == 1
