// Diagram views: details of an element on hover, focus or click; zoom; list rows point at elements.
(function () {
  "use strict";
  var canvas = document.querySelector(".diagram-canvas");
  var panel = document.getElementById("diagram-details");
  if (!canvas) { return; }
  var pinned = null;
  var BACKGROUND = ["participant", "lane"];

  function byId(id) {
    return canvas.querySelector('.bpmn-element[data-element-id="' + CSS.escape(id) + '"]');
  }

  function show(g) {
    if (!panel || !g) { return; }
    var title = g.querySelector("title");
    var lines = title ? title.textContent.split("\n") : [];
    var body = panel.querySelector("[data-role=body]");
    panel.querySelector("[data-role=hint]").hidden = true;
    body.hidden = false;
    body.querySelector("[data-role=name]").textContent = lines[0] || g.dataset.elementId;
    body.querySelector("[data-role=kind]").textContent = lines[1] || "";
    var facts = body.querySelector("[data-role=facts]");
    facts.replaceChildren();
    var details = {};
    try { details = JSON.parse(g.dataset.details || "{}"); } catch (e) { details = {}; }
    Object.keys(details).forEach(function (key) {
      var dt = document.createElement("dt");
      var dd = document.createElement("dd");
      dt.textContent = key;
      dd.textContent = String(details[key]);
      facts.append(dt, dd);
    });
    panel.dataset.elementId = g.dataset.elementId;
  }

  function elementOf(target) {
    var g = target.closest && target.closest(".bpmn-element");
    return g && canvas.contains(g) ? g : null;
  }

  function pin(g) {
    if (pinned) { pinned.classList.remove("is-selected"); }
    pinned = g && g !== pinned ? g : null;
    if (pinned) { pinned.classList.add("is-selected"); show(pinned); }
  }

  canvas.querySelectorAll(".bpmn-element").forEach(function (g) {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    g.setAttribute("aria-label", (g.querySelector("title") || {}).textContent || g.dataset.elementId);
  });
  canvas.addEventListener("mouseover", function (event) {
    var g = elementOf(event.target);
    if (!pinned && g && BACKGROUND.indexOf(g.dataset.elementType) < 0) { show(g); }
  });
  canvas.addEventListener("click", function (event) { pin(elementOf(event.target)); });
  canvas.addEventListener("focusin", function (event) { if (!pinned) { show(elementOf(event.target)); } });
  canvas.addEventListener("keydown", function (event) {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pin(elementOf(event.target)); }
    if (event.key === "Escape") { pin(null); }
  });

  document.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      var mode = button.dataset.zoom;
      canvas.classList.toggle("fit", mode === "fit");
      canvas.classList.toggle("full", mode === "full");
      document.querySelectorAll("[data-zoom]").forEach(function (other) {
        other.setAttribute("aria-pressed", String(other === button));
      });
    });
  });

  // Rows of the lists beside the drawing light up their element, and a click selects it.
  document.querySelectorAll("li[data-element-id], tr[data-element-id]").forEach(function (row) {
    var g = byId(row.dataset.elementId);
    if (!g) { return; }
    row.addEventListener("mouseenter", function () { g.classList.add("is-hovered"); if (!pinned) { show(g); } });
    row.addEventListener("mouseleave", function () { g.classList.remove("is-hovered"); });
    row.addEventListener("click", function (event) {
      if (event.target.closest("a")) { return; }
      pin(g);
      g.scrollIntoView({ block: "nearest", inline: "nearest" });
    });
  });
}());
