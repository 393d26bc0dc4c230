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
// The design follows the form: the readers ticked, and the cases every ticked prediction set covers (a set's cases
// come with the page). A change makes the last answer stale: it is cleared, so the study never records a power
// computed for another design.
const casesOfSet = JSON.parse(document.getElementById("cases-of-set")?.textContent || "{}");
const defaults = { readers: $("#plan-readers").value, cases: $("#plan-cases").value };

function setDesign(id, value, initial) {
  if ($(id).value === String(value)) return;
  $(id).value = value;
  if (!initial && hidden && hidden.value) {
    hidden.value = "";
    result.textContent = "The design changed: compute the power again.";
  }
}

function readersFromForm(initial = false) {
  const readers = document.querySelectorAll("input[name=readers]:checked").length;
  setDesign("#plan-readers", readers || defaults.readers, initial);
}

function casesFromForm(initial = false) {
  const sets = [...document.querySelectorAll("input[name=prediction_sets]:checked")].map((b) => casesOfSet[b.value] || []);
  const shared = sets.length >= 2 ? sets.reduce((common, ids) => common.filter((id) => ids.includes(id))).length : 0;
  setDesign("#plan-cases", shared >= 2 ? shared : defaults.cases, initial); // under 2 cases is no study: the default
}
document.querySelectorAll("input[name=readers]").forEach((box) => box.addEventListener("change", () => readersFromForm()));
document.querySelectorAll("input[name=prediction_sets]").forEach((box) => box.addEventListener("change", () => casesFromForm()));
// what is ticked already (a U-Net comparison's "Create a blind reader study", a form sent back)
readersFromForm(true);
casesFromForm(true);
