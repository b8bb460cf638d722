"""``healthgraph kb …``, ``healthgraph triage`` and ``healthgraph ask``: the knowledge base, guided
triage and medical questions from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli_support import console, print_result, with_service

kb_app = typer.Typer(help="医学知识库 Medical knowledge base: import and train.", no_args_is_help=True)


@kb_app.command("import")
def kb_import(
    path: Annotated[Path | None, typer.Argument(help="外部知识图谱 a medical-KG .json/.jsonl file or folder; "
                                                     "omit for the built-in knowledge base")] = None,
) -> None:
    """导入知识 Import the built-in knowledge base, or an external medical knowledge graph (cleaned as it loads)."""
    from ingest.knowledge import import_knowledge
    from services.settings import Settings

    s = Settings()

    def run(store: Any) -> Any:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("importing", total=None)
            return import_knowledge(store, path, work_dir=s.data_dir / "knowledge", quarantine_root=s.quarantine_dir,
                                    progress=lambda name, i, n: bar.update(task, description=f"loading {name}",
                                                                           completed=i, total=n))

    report = with_service(lambda store: store, run)
    r = report.to_dict()
    console.print(f"[green]✓[/] {r['source']}: read {r['records_read']:,} · conditions {r['conditions']:,} · "
                  f"merged duplicates {r['merged_duplicates']:,} · matched built-in {r['matched_builtin']:,} · "
                  f"rejected {r['rejected']:,} {r['reasons'] or ''} · symptoms completed {r['symptoms_completed']:,}"
                  f" / dropped {r['symptoms_dropped']:,} · {r['seconds']:.1f} s")
    load = r.get("load") or {}
    console.print(f"graph: inserted {load.get('inserted', 0):,} · updated {load.get('updated', 0):,} · unchanged "
                  f"{load.get('unchanged', 0):,} · quarantined {load.get('quarantined', 0):,} "
                  f"({load.get('quarantine_dir')})")
    if not report.reconciles:
        raise typer.Exit(1)


@kb_app.command("train")
def kb_train() -> None:
    """训练模型 Train the department and intent models on the knowledge base; write their model cards."""
    from models.triage import train_default
    from ontology.knowledge import load_knowledge
    from services.settings import Settings

    out = Settings().models_dir / "triage"
    with console.status("training the department and intent models"):
        models = train_default(load_knowledge(), out)
    for model in models:
        card = model.card()
        held = next(iter(card.get("metrics", {}).values()), {})
        console.print(f"[green]✓[/] {model.kind} model: held-out accuracy {held.get('accuracy', float('nan')):.3f}, "
                      f"top-3 {held.get('top3_accuracy', float('nan')):.3f} · card {out / f'{model.kind}.card.json'}")


def triage(
    text: Annotated[str, typer.Argument(help="主诉 the complaint, e.g. 我头疼三天了，有点发烧")],
    age: Annotated[float | None, typer.Option(help="年龄 age in years")] = None,
    sex: Annotated[str | None, typer.Option(help="性别 1 男 male, 2 女 female")] = None,
    division: Annotated[str | None, typer.Option(help="所在区划 GB/T 2260 code, for doctors nearby")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the whole answer as JSON")] = False,
) -> None:
    """智能导诊 Guided triage: red flags first, ranked conditions, departments, doctors."""
    from services.settings import Settings
    from services.triage import Triage

    models_dir = Settings().models_dir
    answer = with_service(lambda store: Triage.open(store, models_dir=models_dir),
                          lambda t: t.assess(text, age_years=age, sex=sex, division=division))
    if as_json:
        print_result(answer)
        return
    colour = {"emergency": "bold red", "see_doctor_soon": "yellow"}.get(answer["action"], "green")
    console.print(f"[{colour}]{answer['message']}[/]")
    for flag in answer["red_flags"]:
        console.print(f"  ⚠ {flag['title']} — {flag['because']}  ({flag['basis']})\n    {flag['advice']}")
    found = answer["understood"]
    console.print("识别 understood: " + ", ".join(s["name"] for s in found["symptoms"])
                  + (f" · 否认 denied: {', '.join(found['denied'])}" if found["denied"] else ""))
    for c in answer["conditions"]:
        console.print(f"  {c['probability']:6.1%}  {c['name']} ({c['code']})  "
                      f"matched: {'、'.join(c['why']['matched_symptoms'])}")
    for d in answer["departments"]:
        console.print(f"  科室 {d['name']} {d['name_en']}  {d['confidence']:.0%}  {'; '.join(d['why'])}")
    if answer["question"]:
        console.print(f"[cyan]? {answer['question']['text']}[/]")
    for doc in answer["doctors"]:
        console.print(f"  医生 {doc['name']} {doc['title']} · {doc['institution_name']} {doc['department']} · "
                      f"{' · '.join(doc['why'])}")
    console.print(f"[dim]{answer['disclaimer']}[/]")


def ask(
    question: Annotated[str, typer.Argument(help="问题 e.g. 糖尿病不能吃什么")],
    as_json: Annotated[bool, typer.Option("--json", help="print the whole answer as JSON")] = False,
) -> None:
    """医学问答 Answer a medical question from the knowledge graph, citing its facts."""
    from services.knowledge import QuestionAnswering
    from services.settings import Settings
    from services.triage import Triage

    models_dir = Settings().models_dir

    def build(store: Any) -> QuestionAnswering:
        t = Triage.open(store, models_dir=models_dir)
        return QuestionAnswering(store, t.parser, t.models.intent)

    answer = with_service(build, lambda qa: qa.ask(question))
    if as_json:
        print_result(answer)
        return
    console.print(f"[bold]{answer['intent']}[/] ({answer['intent_confidence']:.0%})")
    console.print(answer["answer"])
    for fact in answer["facts"][:10]:
        console.print(f"  [dim]· {fact['text']}[/]")
