// Live updates of a task's page: the server renders each change of the timeline and sends
// it as a server-sent event; this swaps it in. No framework, no build step.
(function () {
  "use strict";
  function start() {
    var live = document.getElementById("live");
    if (!live || live.getAttribute("data-live") !== "1" || !window.EventSource) {
      return;
    }
    var source = new EventSource(live.getAttribute("data-events"));
    source.addEventListener("update", function (event) {
      live.innerHTML = event.data; // HTML escaped by the server's templates
    });
    source.addEventListener("done", function () {
      live.setAttribute("data-live", "0");
      source.close();
    });
  }
  document.addEventListener("DOMContentLoaded", start);
})();
