# %% [markdown]
# # Research graph: structure, communities, referrals and an outbreak-like signal
#
# A researcher's first look at an anonymised export (`healthgraph export research --out DIR`). Set
# `HEALTHGRAPH_EXPORT=DIR`; figures are written as PNG to `DIR/figures/` (or `HEALTHGRAPH_FIGURES`).
# Everything here reads the export only: pseudonymous residents with generalised age, sex and county, encounters
# by month, diagnoses by ICD-10 chapter and category, public institutions, and differentially private aggregates.
#
# Run as a script (`python notebooks/research_graph.py`) or cell by cell in any editor that knows `# %%` cells.

# %%
import json
import os
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

if not os.environ.get("HEALTHGRAPH_EXPORT"):
    raise SystemExit("HEALTHGRAPH_EXPORT is not set: point it at a folder written by `healthgraph export research`")
EXPORT = Path(os.environ["HEALTHGRAPH_EXPORT"])
NEEDED = ("research.graphml", "aggregates.parquet", "report.json")
missing = [name for name in NEEDED if not (EXPORT / name).is_file()]
if missing:
    raise FileNotFoundError(f"{EXPORT} lacks {', '.join(missing)}: is it a research export?")
FIGURES = Path(os.environ.get("HEALTHGRAPH_FIGURES", EXPORT / "figures"))
FIGURES.mkdir(parents=True, exist_ok=True)
SEED = 7

report = json.loads((EXPORT / "report.json").read_text(encoding="utf-8"))
print(f"export of {report['as_of']}: k={report['verification']['k']}, "
      f"entropy l={report['verification']['l_entropy']:.2f}, epsilon per cell={report['parameters']['epsilon']}")


def save(figure: plt.Figure, name: str) -> None:
    figure.tight_layout()
    figure.savefig(FIGURES / name, dpi=110)
    plt.close(figure)
    print("wrote", FIGURES / name)


# %% [markdown]
# ## The graph

# %%
graph = nx.read_graphml(EXPORT / "research.graphml")
kinds = nx.get_node_attributes(graph, "kind")
by_kind = Counter(kinds.values())
print(f"{graph.number_of_nodes():,} nodes, {graph.number_of_edges():,} edges:", dict(by_kind))
if not by_kind.get("resident") or not by_kind.get("encounter"):
    raise ValueError(f"{EXPORT / 'research.graphml'} holds no residents or encounters")


def of_kind(kind: str) -> list[str]:
    return [node for node, k in kinds.items() if k == kind]


residents, institutions, encounters = of_kind("resident"), of_kind("institution"), of_kind("encounter")

# An encounter points at its patient (of_patient) and its institution (at_institution).
patient, place = {}, {}
for source, target, data in graph.edges(data=True):
    if data.get("type") == "of_patient":
        patient[source] = target
    elif data.get("type") == "at_institution":
        place[source] = target

# %% [markdown]
# ## Degree distributions (log-log)
#
# A resident's degree is their number of encounters; an institution's, the encounters it saw. Shown as the
# complementary cumulative distribution P(degree >= d), which stays readable for a dozen institutions too.

# %%
visits_per_resident = Counter(patient.values())
visits_per_institution = Counter(place.values())
figure, axes = plt.subplots(1, 2, figsize=(10, 4))
for axis, counts, title in ((axes[0], visits_per_resident, "residents"),
                            (axes[1], visits_per_institution, "institutions")):
    degrees = np.fromiter(counts.values(), dtype=int)
    values = np.unique(degrees)
    axis.loglog(values, [(degrees >= d).mean() for d in values], "o-", markersize=4)
    axis.set_xlabel("degree d (encounters)")
    axis.set_ylabel("P(degree >= d)")
    axis.set_title(f"{title}: {len(counts):,} with >= 1 encounter")
save(figure, "degree_distribution.png")

# %% [markdown]
# ## Communities of institutions (co-visit projection, Louvain)
#
# Two institutions are linked when residents visited both; the weight is how many did.

# %%
visited: dict[str, set[str]] = {}
for encounter, resident in patient.items():
    if encounter in place:
        visited.setdefault(resident, set()).add(place[encounter])
covisit = nx.Graph()
covisit.add_nodes_from(institutions)
for places in visited.values():
    ordered = sorted(places)
    for i, first in enumerate(ordered):
        for second in ordered[i + 1:]:
            weight = covisit.get_edge_data(first, second, {"weight": 0})["weight"]
            covisit.add_edge(first, second, weight=weight + 1)
communities = nx.community.louvain_communities(covisit, weight="weight", seed=SEED)
communities = sorted(communities, key=len, reverse=True)
names = nx.get_node_attributes(graph, "name")
for i, members in enumerate(communities):
    shown = ", ".join(sorted(names.get(m, m) for m in members)[:4])
    print(f"community {i}: {len(members)} institutions ({shown}{' ...' if len(members) > 4 else ''})")
figure, axis = plt.subplots(figsize=(6, 4))
axis.bar(range(len(communities)), [len(c) for c in communities])
axis.set_xlabel("community")
axis.set_ylabel("institutions")
axis.set_title(f"Louvain communities of the co-visit projection ({covisit.number_of_edges()} links)")
save(figure, "institution_communities.png")

# %% [markdown]
# ## Referral pattern: primary care → hospital within about 30 days
#
# Dates are months in the export, so "within 30 days" is read as the same or the next month. Within a month the
# order of two visits is unknown, so same-month pairs are counted in both directions.

# %%
classes = nx.get_node_attributes(graph, "class")
months = nx.get_node_attributes(graph, "month")
visits = pd.DataFrame([{"resident": patient[e], "month": pd.Period(months[e], "M"), "to": classes.get(place[e])}
                       for e in encounters if e in patient and e in place and e in months])
pairs = visits.merge(visits, on="resident", suffixes=("_a", "_b"))
gap = (pairs["month_b"] - pairs["month_a"]).map(lambda offset: offset.n)
pairs = pairs[gap.isin([0, 1]) & (pairs["to_a"] != pairs["to_b"])]
flows = pairs.drop_duplicates(["resident", "to_a", "to_b"]).groupby(["to_a", "to_b"]).size().sort_values()
primary = {"CommunityHealthCenter", "TownshipHealthCenter"}
referral = [a in primary and b == "Hospital" for a, b in flows.index]
print("residents per flow (same or next month):")
print(flows.sort_values(ascending=False).to_string())
figure, axis = plt.subplots(figsize=(8, max(3, 0.35 * len(flows) + 1)))
axis.barh([f"{a} -> {b}" for a, b in flows.index], flows.to_numpy(),
          color=["tab:red" if r else "tab:gray" for r in referral])
axis.set_xlabel("residents")
axis.set_title("Flows between institution classes (red: primary care -> hospital)")
save(figure, "referral_flows.png")

# %% [markdown]
# ## Outbreak-like pattern: infectious diseases (chapter I, A00–B99) by area and month
#
# From the differentially private aggregates (`dp_count`, discrete Laplace noise of scale 1/ε per cell). The
# published diagnosis counts are per prefecture of residence, chapter and month.

# %%
aggregates = pd.read_parquet(EXPORT / "aggregates.parquet")
infectious = aggregates[(aggregates["measure"] == "diagnoses") & (aggregates["chapter"] == "I")]
if infectious.empty:
    raise ValueError("the aggregates hold no chapter I diagnosis cells")
heat = infectious.pivot_table(index="prefecture", columns="month", values="dp_count", aggfunc="sum")
division_names = nx.get_node_attributes(graph, "name")
figure, axis = plt.subplots(figsize=(max(6, 0.6 * heat.shape[1] + 2), max(3, 0.4 * heat.shape[0] + 1.5)))
image = axis.imshow(heat.to_numpy(), aspect="auto", cmap="Reds")
axis.set_xticks(range(heat.shape[1]), heat.columns, rotation=90)
axis.set_yticks(range(heat.shape[0]), heat.index)
axis.set_xlabel("month")
axis.set_ylabel("prefecture (GB/T 2260)")
axis.set_title(f"Chapter I diagnoses, DP counts (epsilon {report['parameters']['epsilon']} per cell)")
figure.colorbar(image, ax=axis, label="persons diagnosed (noisy)")
save(figure, "infectious_heatmap.png")
peak = infectious.sort_values("dp_count", ascending=False).iloc[0]
print(f"largest noisy cell: prefecture {peak['prefecture']} "
      f"({division_names.get('division:' + str(peak['prefecture']), '?')}), {peak['month']}: {peak['dp_count']}")
