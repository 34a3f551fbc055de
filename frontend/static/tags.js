// Decisions on tag candidates: buttons, keyboard (a = accept, r = reject on the focused candidate) and bulk.
// Decisions go to POST /tags/{tag}/decisions as JSON; decided candidates leave the grid at once, and the page's
// counts and member grid are refreshed from the server (the "tag-decided" event, see tag.html).
(function () {
  function form() { return document.getElementById("decide"); }

  async function decide(cards, decision) {
    const f = form();
    if (!f || cards.length === 0) return;
    const tag = f.dataset.tag;
    const body = {decisions: cards.map(c => ({id: c.dataset.id, decision: decision,
                                                score: parseFloat(c.dataset.score)}))};
    const resp = await fetch("/tags/" + encodeURIComponent(tag) + "/decisions", {
      method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": csrfToken()}, body: JSON.stringify(body)});
    if (!resp.ok) { await reportFailure(resp); return; }
    const next = cards[cards.length - 1].nextElementSibling;
    cards.forEach(c => c.remove());
    if (next && next.classList.contains("candidate")) next.focus();
    htmx.trigger(document.body, "tag-decided");
  }

  document.addEventListener("click", function (ev) {
    const button = ev.target.closest("#decide button");
    if (!button) return;
    ev.preventDefault();
    if (button.dataset.decision) {
      decide([button.closest(".candidate")], button.dataset.decision);
    } else if (button.dataset.bulk) {
      const all = Array.from(form().querySelectorAll(".candidate"));
      const cards = button.dataset.scope === "all" ? all : all.filter(c => c.querySelector("input").checked);
      decide(cards, button.dataset.bulk);
    }
  });

  document.addEventListener("keydown", function (ev) {
    const card = document.activeElement && document.activeElement.closest(".candidate");
    if (!card || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "a" || ev.key === "r") {
      ev.preventDefault();
      decide([card], ev.key === "a" ? "accept" : "reject");
    }
  });
})();
