"""Output formats the tests pin: a change here is a change users see (README tables, results files)."""

#: The metric columns of the demo's and ``sebra fit``'s results table, in order (``kendall_tau_b`` and ``seconds``
#: follow when present).
TABLE_METRICS = ["worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both", "gap_mean"]
