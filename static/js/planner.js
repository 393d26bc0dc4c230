// The power planner on the study form: asks the server to simulate the primary analysis for a design and
// keeps the last answer in the form's hidden `planned_power` field, so the study records what was planned.
const $ = (sel) => document.querySelector(sel);
const result = $("#plan-result");
const hidden = document.querySelector("input[name=planned_power]");
const field = (name) => document.querySelector(`[name=${name}]`);

function query(solve) {
  const p = new URLSearchParams({
    preference: $("#plan-preference").value, readers: $("#plan-readers").value, cases: $("#plan-cases").value,
    reader_sd: $("#plan-reader-sd").value, case_sd: $("#plan-case-sd").value, target: $("#plan-target").value,
    alpha: field("alpha")?.value || "0.05", method: field("primary_method")?.value || "mixed",
    ties: field("ties")?.value || "exclude",
  });
  if (solve) p.set("solve", "cases");
  return p;
}

async function plan(solve) {
  const buttons = [$("#plan-power"), $("#plan-cases-needed")];
  buttons.forEach((b) => { b.disabled = true; });
  result.textContent = "Simulating studies…";
  try {
    const r = await fetch(`${$("#plan-power").dataset.url}?${query(solve)}`, { credentials: "same-origin" });
    const data = await r.json();
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    if (data.power === null) {
      result.textContent = data.note;
    } else {
      const lead = solve ? `${data.cases} cases for ${Math.round(100 * data.target)}% power: ` : "";
      result.textContent = lead + data.line;
      if (hidden) hidden.value = JSON.stringify({ power: data.power, cases: data.cases, mc_se: data.mc_se, line: data.line, design: data.design });
      if (solve) $("#plan-cases").value = data.cases;
    }
  } catch (e) {
    result.textContent = `The planner failed: ${e.message}`;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

$("#plan-power").addEventListener("click", () => plan(false));
$("#plan-cases-needed").addEventListener("click", () => plan(true));
// Readers ticked on the form are the planner's default reader count.
document.querySelectorAll("input[name=readers]").forEach((box) => box.addEventListener("change", () => {
  const n = document.querySelectorAll("input[name=readers]:checked").length;
  if (n) $("#plan-readers").value = n;
}));
// ... and so is the study's case count: the cases that every ticked prediction set covers (a set's cases come with
// the page), recounted as sets are ticked, so the planned design is the study's own.
const casesOfSet = JSON.parse(document.getElementById("cases-of-set")?.textContent || "{}");
function studyCases() {
  const sets = [...document.querySelectorAll("input[name=prediction_sets]:checked")].map((b) => casesOfSet[b.value] || []);
  if (sets.length < 2) return;
  const n = sets.reduce((common, ids) => common.filter((id) => ids.includes(id))).length;
  if (n >= 2) $("#plan-cases").value = n;
}
document.querySelectorAll("input[name=prediction_sets]").forEach((box) => box.addEventListener("change", studyCases));
studyCases(); // sets already ticked (from a U-Net comparison's "Create a blind reader study")

