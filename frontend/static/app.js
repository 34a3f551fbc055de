// What every page shares: the CSRF header on writes, one error region, and look-alikes kept in view.
// No page has inline scripts or handlers (the Content-Security-Policy forbids them): behaviour lives here.

// Writes must echo the galsearch_csrf cookie in X-CSRF-Token (app/security.py): another site can read neither.
function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)galsearch_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

// Shows a message in the page's error region, as text: whatever the message holds is never parsed as markup.
function showError(message) {
  const region = document.getElementById("errors");
  const template = document.getElementById("error-template");
  if (!region || !template) return;
  const box = template.content.firstElementChild.cloneNode(true);
  box.querySelector(".error").textContent = message;
  region.replaceChildren(box);
}

// The message of a refused request, as text: the "detail" of a JSON answer, the text of an HTML one (parsed
// inert, so nothing in it loads or runs), else the status.
function failureText(status, contentType, body) {
  contentType = contentType || "";
  let text = "";
  try {
    if (contentType.includes("json")) {
      const data = JSON.parse(body);
      text = typeof data.detail === "string" ? data.detail : (data.message || JSON.stringify(data.detail));
    } else if (contentType.includes("html")) {
      const doc = new DOMParser().parseFromString(body, "text/html");
      const el = doc.querySelector(".error") || doc.body;
      text = el ? el.textContent : "";
    } else {
      text = body;
    }
  } catch (e) {
    text = body;
  }
  text = (text || "").trim().slice(0, 500);
  return text || ("the server answered " + status);
}

async function reportFailure(resp) {
  showError(failureText(resp.status, resp.headers.get("Content-Type"), await resp.text()));
}

document.addEventListener("htmx:configRequest", function (ev) {
  ev.detail.headers["X-CSRF-Token"] = csrfToken();
});

// A new action by the researcher (a form, a button) clears the last error.
document.addEventListener("htmx:beforeRequest", function (ev) {
  const elt = ev.detail.elt;
  if (elt && (elt.tagName === "FORM" || elt.tagName === "BUTTON")) {
    const region = document.getElementById("errors");
    if (region) region.replaceChildren();
  }
});

// An error answer is swapped in only when it is the server's own escaped error partial, which it retargets into
// the error region (app/errors.py); any other error body is shown as text, never inserted as markup.
document.addEventListener("htmx:beforeSwap", function (ev) {
  const xhr = ev.detail.xhr;
  if (xhr.status < 400) return;
  const type = xhr.getResponseHeader("Content-Type") || "";
  const ours = type.startsWith("text/html") && xhr.getResponseHeader("HX-Retarget") === "#errors";
  ev.detail.shouldSwap = ours;
  ev.detail.isError = false;
  if (!ours) showError(failureText(xhr.status, type, xhr.responseText));
});

document.addEventListener("htmx:sendError", function () {
  showError("could not reach the galsearch server");
});

document.addEventListener("htmx:afterRequest", function (ev) {
  // The researcher's name changes the per-researcher panels (ratings, rankings): reload once it is set.
  const elt = ev.detail.elt;
  if (elt.matches && elt.matches("form.who") && ev.detail.xhr && ev.detail.xhr.status < 400) location.reload();
});

// Look-alikes land in #similar: beside the gallery it is sticky, but in a one-column layout it may sit far above
// the galaxy that was clicked, so bring it into view.
document.addEventListener("htmx:afterSwap", function (ev) {
  const target = ev.detail.target;
  if (!target || target.id !== "similar") return;
  const box = target.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight - 120) target.scrollIntoView({block: "start"});
});

document.addEventListener("click", function (ev) {
  const dismiss = ev.target.closest(".error-box .dismiss");
  if (dismiss) dismiss.closest(".error-box").remove();
  if (ev.target.closest("[data-back]")) history.back();
});

// "Select several": while it is ticked, a click on a gallery thumbnail picks it (instead of opening its
// look-alikes), and "more like these" asks for the galaxies most like any picked one.
function pickedIds() {
  return Array.from(document.querySelectorAll("#gallery .thumb.picked"), (t) => t.dataset.id);
}

function showPicked() {
  const count = document.getElementById("picked-count");
  const button = document.getElementById("more-like");
  if (!count || !button) return;
  count.textContent = String(pickedIds().length);
  button.disabled = pickedIds().length === 0;
}

document.addEventListener("htmx:confirm", function (ev) {
  const mode = document.getElementById("select-mode");
  const thumb = ev.detail.elt.closest ? ev.detail.elt.closest("#gallery .thumb") : null;
  if (!mode || !mode.checked || !thumb) return;
  ev.preventDefault();
  thumb.classList.toggle("picked");
  thumb.setAttribute("aria-pressed", String(thumb.classList.contains("picked")));
  showPicked();
});

document.addEventListener("click", function (ev) {
  if (!ev.target.closest || !ev.target.closest("#more-like")) return;
  const query = new URLSearchParams();
  pickedIds().forEach((id) => query.append("id", id));
  query.append("k", "20");
  htmx.ajax("GET", "/similar?" + query.toString(), { target: "#similar", swap: "innerHTML" });
});

document.addEventListener("change", function (ev) {
  if (ev.target.id !== "select-mode" || ev.target.checked) return;
  document.querySelectorAll("#gallery .thumb.picked").forEach((t) => {
    t.classList.remove("picked");
    t.removeAttribute("aria-pressed");
  });
  showPicked();
});
