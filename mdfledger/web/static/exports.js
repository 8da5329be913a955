/* An export job's page reloads itself while the job is queued or running, so its progress and
   then its download link appear without the user doing anything. The page says how often
   (data-refresh-seconds on an element); a ready, failed or expired job's page has no such
   element and stays put. Without JavaScript the page asks the user to reload. */
(function () {
  "use strict";

  var marker = document.querySelector("[data-refresh-seconds]");
  if (!marker) {
    return;
  }
  var seconds = parseInt(marker.getAttribute("data-refresh-seconds"), 10);
  if (!(seconds > 0)) {
    return;
  }
  window.setTimeout(function () {
    window.location.reload();
  }, seconds * 1000);
})();
