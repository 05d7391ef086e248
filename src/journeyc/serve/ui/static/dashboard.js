// journeyc dashboard: the little script the pages use. Pressing "/" focuses the user
// search, as in many dashboards; nothing else needs script.
document.addEventListener("keydown", (e) => {
  const box = document.querySelector('.search input[type="search"]');
  if (e.key === "/" && box && document.activeElement !== box) {
    e.preventDefault();
    box.focus();
  }
});
