"""The triage and question page of the console (/console/triage): one form for residents and
call-centre staff, answered by POST /triage and POST /ask, with every part of the answer shown —
red flags first, conditions (not a diagnosis), departments, the clarifying question, doctors."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>智能导诊 Guided triage · HealthGraph</title>
<style>
 body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:2rem;max-width:56rem;color:#222}
 textarea{width:100%;font-size:1.05rem} input{width:5rem} .row{margin:.5rem 0}
 .emergency{background:#fde2e2;border-left:6px solid #c00;padding:.8rem;font-size:1.2rem}
 .soon{background:#fff4d6;border-left:6px solid #d90;padding:.8rem} .ok{background:#e6f4ea;border-left:6px solid #2a7;padding:.8rem}
 .card{border:1px solid #ddd;border-radius:6px;padding:.6rem;margin:.4rem 0} .dim{color:#666;font-size:.9rem}
 .error{background:#eee;border-left:6px solid #555;padding:.8rem}
</style></head><body>
<h1>智能导诊 Guided triage</h1>
<p class="dim">描述哪里不舒服、多久了；也可以问一个医学问题。Describe what is wrong, or ask a question.
 <a href="/">控制台 console</a> · <a href="/docs">API</a></p>
<form id="triage">
 <textarea id="text" rows="3" placeholder="例如：我头疼三天了，有点发烧，嗓子也疼"></textarea>
 <div class="row">年龄 age <input id="age" type="number" min="0" max="130" step="0.1">
  性别 sex <select id="sex"><option value="">—</option><option value="1">男 male</option><option value="2">女 female</option></select>
  区划 division <input id="division" placeholder="330106" style="width:7rem">
  <button id="go" type="submit">导诊 Triage</button> <button id="ask" type="button">提问 Ask</button></div>
</form>
<div id="answer"></div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const out = document.getElementById("answer");
async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  return [r.ok, await r.json()];
}
function error(e) { return `<div class="error" id="error"><b>${esc(e.code)}</b> ${esc(e.title)}<br>${esc(e.message)}</div>`; }
document.getElementById("triage").addEventListener("submit", async ev => {
  ev.preventDefault();
  const body = {text: document.getElementById("text").value};
  const age = document.getElementById("age").value, sex = document.getElementById("sex").value,
        division = document.getElementById("division").value;
  if (age) body.age_years = Number(age); if (sex) body.sex = sex; if (division) body.division = division;
  const [ok, a] = await post("/triage", body);
  if (!ok) { out.innerHTML = error(a); return; }
  const cls = {emergency: "emergency", see_doctor_soon: "soon"}[a.action] || "ok";
  let h = `<div class="${cls}" id="action" data-action="${esc(a.action)}">${esc(a.message)}</div>`;
  for (const f of a.red_flags) h += `<div class="card red-flag"><b>⚠ ${esc(f.title)}</b> ${esc(f.title_en)}<br>${esc(f.advice)}<br>
     <span class="dim">${esc(f.because)} · 依据 basis: ${esc(f.basis)}</span></div>`;
  const u = a.understood;
  h += `<p>识别到 understood: ${u.symptoms.map(s => esc(s.name)).join("、") || "—"}${u.denied.length ? " · 否认 denied: " + u.denied.map(esc).join("、") : ""}</p>`;
  if (a.question) h += `<div class="card" id="question">❓ ${esc(a.question.text)}</div>`;
  if (a.conditions.length) h += "<h3>可能的情况 Possible conditions</h3>" + a.conditions.map(c =>
     `<div class="card condition">${(c.probability*100).toFixed(0)}% <b>${esc(c.name)}</b> <span class="dim">${esc(c.code)} · 匹配 matched: ${c.why.matched_symptoms.map(esc).join("、")}</span></div>`).join("");
  h += "<h3>建议科室 Departments</h3>" + a.departments.map(d =>
     `<div class="card department">${esc(d.name)} ${esc(d.name_en)} · ${(d.confidence*100).toFixed(0)}% <span class="dim">${d.why.map(esc).join("; ")}</span></div>`).join("");
  if (a.doctors.length) h += "<h3>推荐医生 Doctors</h3>" + a.doctors.map(d =>
     `<div class="card doctor"><b>${esc(d.name)}</b> ${esc(d.title)} · ${esc(d.institution_name)} ${esc(d.department)}<br><span class="dim">${d.why.map(esc).join(" · ")}${d.expertise ? " · " + esc(d.expertise) : ""}</span></div>`).join("");
  h += `<p class="dim">${esc(a.disclaimer)}</p>`;
  out.innerHTML = h;
});
document.getElementById("ask").addEventListener("click", async () => {
  const [ok, a] = await post("/ask", {question: document.getElementById("text").value});
  if (!ok) { out.innerHTML = error(a); return; }
  out.innerHTML = `<div class="ok" id="qa" data-known="${a.known}"><b>${esc(a.intent)}</b><br>${esc(a.answer).replace(/\\n/g, "<br>")}</div>` +
    a.facts.slice(0, 10).map(f => `<div class="dim fact">· ${esc(f.text)}</div>`).join("");
});
</script></body></html>
"""


def console_triage_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/triage", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    return router
