// The survey map: the server draws each view (/map.png); this script pans and zooms the view, shows the galaxy
// under the pointer, and opens a clicked galaxy's look-alikes, which the next drawing highlights.
(function () {
  const box = document.getElementById("map");
  if (!box) return;
  const img = document.getElementById("map-image");
  const tip = document.getElementById("map-tip");
  const colour = document.getElementById("map-colour");
  const size = 640;
  const pad = (a, b) => [a - 0.03 * (b - a), b + 0.03 * (b - a)];
  const home = () => {
    const [x0, x1] = pad(+box.dataset.x0, +box.dataset.x1);
    const [y0, y1] = pad(+box.dataset.y0, +box.dataset.y1);
    const half = Math.max(x1 - x0, y1 - y0) / 2, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    return { x0: cx - half, x1: cx + half, y0: cy - half, y1: cy + half };
  };
  let view = home();
  let highlight = null;

  function draw() {
    const q = new URLSearchParams({ x0: view.x0, x1: view.x1, y0: view.y0, y1: view.y1, width: size, height: size,
                                    colour: colour.value, k: box.dataset.k });
    if (highlight) q.set("highlight", highlight);
    img.src = "/map.png?" + q.toString();
  }

  // A pointer position in the image as map coordinates (y up).
  function at(ev) {
    const r = img.getBoundingClientRect();
    const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
    return { x: view.x0 + fx * (view.x1 - view.x0), y: view.y1 - fy * (view.y1 - view.y0) };
  }

  async function galaxyAt(ev) {
    const p = at(ev);
    const radius = 6 * (view.x1 - view.x0) / img.getBoundingClientRect().width;  // 6 screen pixels
    const resp = await fetch(`/map/at?x=${p.x}&y=${p.y}&radius=${radius}`, { headers: { Accept: "application/json" } });
    return resp.ok ? resp.json() : null;
  }

  img.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    const p = at(ev), f = ev.deltaY > 0 ? 1.25 : 0.8;
    view = { x0: p.x - (p.x - view.x0) * f, x1: p.x + (view.x1 - p.x) * f,
             y0: p.y - (p.y - view.y0) * f, y1: p.y + (view.y1 - p.y) * f };
    draw();
  }, { passive: false });

  // Shift-drag draws a box or a lasso (the chosen shape); on release the galaxies inside it are listed below the
  // map, ready to tag.
  const rect = document.getElementById("map-box");
  const lasso = document.getElementById("map-lasso");
  const shape = document.getElementById("map-shape");
  const maxLasso = 500;  // vertices the server takes
  let select = null;
  function drawSelection(ev) {
    const r = box.getBoundingClientRect();
    if (select.path) {
      const last = select.path[select.path.length - 1];
      if (Math.hypot(ev.clientX - last.x, ev.clientY - last.y) < 4 || select.path.length >= maxLasso) return;
      select.path.push({ x: ev.clientX, y: ev.clientY });
      lasso.querySelector("polygon").setAttribute(
        "points", select.path.map(p => `${p.x - r.left},${p.y - r.top}`).join(" "));
      lasso.hidden = false;
      return;
    }
    const x = Math.min(select.x, ev.clientX), y = Math.min(select.y, ev.clientY);
    rect.style.left = (x - r.left) + "px";
    rect.style.top = (y - r.top) + "px";
    rect.style.width = Math.abs(ev.clientX - select.x) + "px";
    rect.style.height = Math.abs(ev.clientY - select.y) + "px";
    rect.hidden = false;
  }

  // The selection's query: a box's corners, or the lasso's points, in map coordinates.
  function region(ev) {
    if (select.path) {
      const points = select.path.map(p => at({ clientX: p.x, clientY: p.y }));
      return points.length < 3 ? null
        : new URLSearchParams({ lasso: points.map(p => `${p.x},${p.y}`).join(",") });
    }
    const a = at({ clientX: select.x, clientY: select.y }), b = at(ev);
    if (a.x === b.x || a.y === b.y) return null;
    return new URLSearchParams({ x0: Math.min(a.x, b.x), x1: Math.max(a.x, b.x),
                                 y0: Math.min(a.y, b.y), y1: Math.max(a.y, b.y) });
  }

  let drag = null;
  img.addEventListener("mousedown", function (ev) {
    if (ev.shiftKey) {
      select = { x: ev.clientX, y: ev.clientY,
                 path: shape.value === "lasso" ? [{ x: ev.clientX, y: ev.clientY }] : null };
      return;
    }
    drag = { x: ev.clientX, y: ev.clientY, view, moved: false };
  });
  window.addEventListener("mouseup", async function (ev) {
    if (select) {
      const q = region(ev);
      select = null;
      rect.hidden = lasso.hidden = true;
      if (q) htmx.ajax("GET", "/map/region?" + q.toString(), { target: "#region", swap: "innerHTML" });
      return;
    }
    const was = drag;
    drag = null;
    if (!was || was.moved || ev.target !== img) return;
    const g = await galaxyAt(ev);
    if (!g) return;
    highlight = g.id;
    htmx.ajax("GET", `/galaxies/${encodeURIComponent(g.id)}/similar?k=${box.dataset.k}`,
              { target: "#similar", swap: "innerHTML" });
    draw();
  });

  let hover = null;
  window.addEventListener("mousemove", function (ev) {
    if (select) drawSelection(ev);
  });
  img.addEventListener("mousemove", function (ev) {
    if (select) return;
    if (drag) {
      const r = img.getBoundingClientRect();
      const dx = (ev.clientX - drag.x) / r.width * (drag.view.x1 - drag.view.x0);
      const dy = (ev.clientY - drag.y) / r.height * (drag.view.y1 - drag.view.y0);
      if (Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3) drag.moved = true;
      if (drag.moved) {
        view = { x0: drag.view.x0 - dx, x1: drag.view.x1 - dx, y0: drag.view.y0 + dy, y1: drag.view.y1 + dy };
        draw();
      }
      return;
    }
    clearTimeout(hover);
    hover = setTimeout(async function () {
      const g = await galaxyAt(ev);
      if (!g) { tip.hidden = true; return; }
      tip.querySelector("img").src = `/galaxies/${encodeURIComponent(g.id)}/image.png`;
      tip.querySelector("span").textContent = g.id;
      const r = box.getBoundingClientRect();
      tip.style.left = (ev.clientX - r.left + 12) + "px";
      tip.style.top = (ev.clientY - r.top + 12) + "px";
      tip.dataset.id = g.id;
      tip.hidden = false;
    }, 120);
  });
  img.addEventListener("mouseleave", () => { tip.hidden = true; });
  colour.addEventListener("change", draw);
  document.getElementById("map-reset").addEventListener("click", () => { view = home(); draw(); });
  draw();
})();
