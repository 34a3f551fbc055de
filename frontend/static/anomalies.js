// Rating anomalies: a click on 0-5, or the key 0-5 on the focused galaxy, posts the rating as JSON and swaps in
// the re-ranked panels (the server retrains every few ratings); focus moves to the next galaxy to rate.
(function () {
  async function rate(card, rating) {
    const resp = await fetch("/anomalies/ratings", {
      method: "POST", headers: {"Content-Type": "application/json", "HX-Request": "true", "X-CSRF-Token": csrfToken()},
      body: JSON.stringify({id: card.dataset.id, rating: rating})});
    if (!resp.ok) { await reportFailure(resp); return; }
    const panels = document.getElementById("anomaly-panels");
    panels.innerHTML = await resp.text();
    htmx.process(panels);
    const next = panels.querySelector("#to-rate .rate-card");
    if (next) next.focus();
  }

  document.addEventListener("click", function (ev) {
    const button = ev.target.closest(".rate-card button[data-rating]");
    if (button) rate(button.closest(".rate-card"), parseInt(button.dataset.rating, 10));
  });

  document.addEventListener("keydown", function (ev) {
    const card = document.activeElement && document.activeElement.closest(".rate-card");
    if (!card || ev.ctrlKey || ev.metaKey || ev.altKey || !/^[0-5]$/.test(ev.key)) return;
    ev.preventDefault();
    rate(card, parseInt(ev.key, 10));
  });
})();
