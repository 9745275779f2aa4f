// orchd console: refresh the page's data every few seconds (paused while the operator types
// or the tab is hidden), show local times on hover, draw the runs-per-hour chart. The page
// works without this file: every piece of data is in the HTML, every action is a plain form.
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var typing = false;

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) { el.title = "local: " + when.toLocaleString(); }
    });
  }

  function chart(root) {
    var data = root.querySelector("#chart-data");
    var box = root.querySelector("#chart");
    if (!data || !box || typeof uPlot === "undefined") { return; }
    var hourly = JSON.parse(data.textContent);
    var xs = hourly.rows.map(function (r) { return Date.parse(r.hour) / 1000; });
    var colors = { succeeded: "#1a7f37", failed: "#a11a1a", timed_out: "#9a6700", interrupted: "#5a32a3" };
    var series = [{}];
    var columns = [xs];
    hourly.outcomes.forEach(function (outcome) {
      series.push({ label: outcome, stroke: colors[outcome] || "#4a5360", width: 2 });
      columns.push(hourly.rows.map(function (r) { return r.counts[outcome]; }));
    });
    box.textContent = "";
    var width = Math.max(320, Math.min(box.clientWidth || 900, 1400));
    var utc = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };
    var options = { width: width, height: 220, tzDate: utc, series: series,
                    axes: [{ label: "hour (UTC)" }, { label: "runs" }] };
    new uPlot(options, columns, box);
    box.dataset.drawn = "true";
  }

  function refresh() {
    var main = document.getElementById("page");
    if (!main || typing || document.hidden || typeof htmx === "undefined") { return; }
    if (document.activeElement && main.contains(document.activeElement) &&
        /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) { return; }
    htmx.ajax("GET", main.dataset.refresh, { target: "#page", select: "#page", swap: "outerHTML" });
  }

  document.addEventListener("input", function () { typing = true; });
  document.addEventListener("htmx:afterSwap", function () {
    localTimes(document);
    chart(document);
  });
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    chart(document);
    window.setInterval(refresh, REFRESH_MS);
  });
})();
