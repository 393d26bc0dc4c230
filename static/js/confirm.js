// Irreversible buttons (cancel a run, close or unblind a study) carry data-confirm: the form is sent only once
// the user agrees with that sentence.
document.addEventListener("submit", (event) => {
  const question = event.submitter?.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
