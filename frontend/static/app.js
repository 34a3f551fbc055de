// Writes must echo the galsearch_csrf cookie in X-CSRF-Token (app/security.py): another site can read neither.
function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)galsearch_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

document.addEventListener("htmx:configRequest", function (ev) {
  ev.detail.headers["X-CSRF-Token"] = csrfToken();
});

// htmx leaves 4xx answers out of the page by default; ours carry a message for the researcher (no galaxy at
// those coordinates, a malformed position), so swap them into their target like any other answer.
document.addEventListener("htmx:beforeSwap", function (ev) {
  const status = ev.detail.xhr.status;
  if (status >= 400 && status < 500) {
    ev.detail.shouldSwap = true;
    ev.detail.isError = false;
  }
});
