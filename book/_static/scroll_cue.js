/* A visible cue on every box that scrolls sideways.

   Wide tables, code blocks and display equations scroll in their own box (tables.css), so no
   column and no code is ever cut off; but a box that scrolls looks like one that does not. This
   script wraps each such box in <div class="scroll-cue"> and, while its content is wider than the
   box, marks the wrapper with scroll-cue--overflow: tables.css then draws a shadow on the side
   that hides content and a "scroll →" hint until the reader reaches the right end. A box that
   fits gets nothing. Jupyter Book loads every .js file of book/_static in every page. */
(function () {
  "use strict";

  var BOXES = [
    ".bd-article .pst-scrollable-table-container",
    ".bd-article .cell_output table",
    ".bd-article div.highlight > pre",
    ".bd-article div.math",
  ].join(", ");

  function update(box) {
    var wrapper = box.parentElement;
    var hidden = box.scrollWidth - box.clientWidth;   // pixels of content out of view
    wrapper.classList.toggle("scroll-cue--overflow", hidden > 1);
    wrapper.classList.toggle("scroll-cue--left", box.scrollLeft > 1);
    wrapper.classList.toggle("scroll-cue--right", box.scrollLeft < hidden - 1);
  }

  function wrap(box) {
    if (box.parentElement.classList.contains("scroll-cue")) {
      return;
    }
    var wrapper = document.createElement("div");
    wrapper.className = "scroll-cue";
    box.parentNode.insertBefore(wrapper, box);
    wrapper.appendChild(box);
    var hint = document.createElement("span");
    hint.className = "scroll-cue__hint";
    hint.setAttribute("aria-hidden", "true");
    hint.textContent = "scroll \u2192";
    wrapper.appendChild(hint);
    box.addEventListener("scroll", function () { update(box); }, { passive: true });
    if (window.ResizeObserver) {   // equations grow when MathJax typesets them
      new ResizeObserver(function () { update(box); }).observe(box);
    }
    update(box);
  }

  function wrapAll() {
    document.querySelectorAll(BOXES).forEach(function (box) {
      if (!box.closest(".scroll-cue") || box.parentElement.classList.contains("scroll-cue")) {
        wrap(box);   // a box inside another one's wrapper (a table in an output) is left alone
      }
    });
  }

  function updateAll() {
    document.querySelectorAll(".scroll-cue > :first-child").forEach(update);
  }

  document.addEventListener("DOMContentLoaded", wrapAll);
  window.addEventListener("load", function () {
    updateAll();
    // MathJax typesets the equations after the page has loaded; their width is known only then
    var startup = window.MathJax && window.MathJax.startup;
    if (startup && startup.promise) {
      startup.promise.then(updateAll);
    }
  });
  window.addEventListener("resize", updateAll);
})();
