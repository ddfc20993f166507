// Small progressive enhancements; every form also works without them.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit], input[data-autosubmit]")) {
    event.target.form.requestSubmit();
  }
});
