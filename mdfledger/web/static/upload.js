/* The proof uploader on a claim's page. Plain JavaScript, no framework, nothing from a CDN.

   It enhances the upload form (form[data-upload]): files dropped on the zone or chosen with
   its file input upload one request per file, two at a time, through XMLHttpRequest (fetch
   has no upload progress), each with a row showing its name, size, a progress bar and then
   "uploaded" or the server's own message. Files above the limit (data-max-bytes) are refused
   here before any upload; the server checks again anyway. When every file is uploaded the
   page reloads, so the document list and "still needed" are current; when one failed, its
   message stays on screen. Without JavaScript the form still posts the files itself. */
(function () {
  "use strict";

  var AT_ONCE = 2;

  function humanSize(bytes) {
    if (bytes < 1024) {
      return bytes === 1 ? "1 byte" : bytes + " bytes";
    }
    var value = bytes / 1024;
    var unit = "KB";
    if (bytes >= 1024 * 1024) {
      value = bytes / 1024 / 1024;
      unit = "MB";
    }
    return value.toFixed(1).replace(/\.0$/, "") + " " + unit;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function messageFor(xhr, maxText) {
    // The server's words when it sent JSON; otherwise say what the status means.
    if (xhr.status === 413) {
      return "This file is larger than the server accepts (at most " + maxText +
        " a file). Upload a smaller file, or split it.";
    }
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("application/json") === 0) {
      try {
        var body = JSON.parse(xhr.responseText);
        if (body && body.message) {
          return body.message.charAt(0).toUpperCase() + body.message.slice(1);
        }
      } catch (ignored) {
        // fall through to the status's meaning
      }
    }
    if (xhr.status === 400) {
      return "The page's security token has expired. Reload the page and upload the file again.";
    }
    // A signed-out session is sent to the sign-in page, which XMLHttpRequest follows.
    var signedOut = xhr.responseURL && xhr.responseURL.indexOf("/login") !== -1;
    if (signedOut || xhr.status === 401) {
      return "You were signed out. Sign in again, then upload the file again.";
    }
    if (xhr.status === 403) {
      return "You may not add proof to this claim.";
    }
    if (xhr.status === 404) {
      return "This claim is not available to you any more.";
    }
    return "The upload failed (error " + xhr.status + "). Try again in a moment.";
  }

  function setup(form) {
    var input = form.querySelector('input[type="file"]');
    var kind = form.querySelector('select[name="kind"]');
    var zone = form.querySelector(".dropzone");
    var list = form.querySelector(".upload-list");
    var status = form.querySelector(".upload-status");
    var submitRow = form.querySelector(".upload-submit");
    var tokenInput = form.querySelector('input[name="csrf_token"]');
    if (!input || !kind || !zone || !list || !status || !tokenInput) {
      return; // not the form this script knows: leave the plain form alone
    }
    var token = tokenInput.value;
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10) || 0;
    var maxText = form.getAttribute("data-max-text") || humanSize(maxBytes);
    var returnUrl = form.getAttribute("data-return-url") || window.location.pathname;

    var waiting = [];
    var running = 0;
    var succeeded = 0;
    var failed = 0;

    if (submitRow) {
      submitRow.hidden = true; // files upload as soon as they are chosen
    }

    function say(text) {
      status.textContent = text;
    }

    function reloadPage() {
      if (window.location.pathname === returnUrl.split("#")[0]) {
        window.location.reload();
      } else {
        window.location.assign(returnUrl);
      }
    }

    function addRow(file, kindLabel) {
      var row = element("li", "upload-item");
      var name = element("span", "upload-name", file.name);
      var facts = element("span", "hint", humanSize(file.size) + " · " + kindLabel);
      var bar = element("progress", "upload-progress");
      bar.max = file.size || 1;
      bar.value = 0;
      bar.setAttribute("aria-label", "Uploading " + file.name);
      var state = element("span", "upload-state", "waiting");
      row.appendChild(name);
      row.appendChild(document.createTextNode(" "));
      row.appendChild(facts);
      row.appendChild(bar);
      row.appendChild(state);
      list.appendChild(row);
      list.hidden = false;
      return { row: row, bar: bar, state: state };
    }

    function succeed(item) {
      succeeded += 1;
      item.view.bar.value = item.view.bar.max;
      item.view.state.textContent = "uploaded";
      item.view.row.classList.add("upload-ok");
    }

    function fail(item, message) {
      failed += 1;
      item.view.bar.hidden = true;
      item.view.state.textContent = message;
      item.view.state.setAttribute("role", "alert");
      item.view.row.classList.add("upload-failed");
    }

    function finished() {
      if (running || waiting.length) {
        return;
      }
      if (!failed && succeeded) {
        say(succeeded === 1 ? "The file is uploaded. Updating the page…" :
          "All " + succeeded + " files are uploaded. Updating the page…");
        reloadPage();
        return;
      }
      if (succeeded) {
        say(succeeded + " uploaded, " + failed + " not: see the messages above.");
        if (!form.querySelector(".upload-refresh")) {
          var again = element("button", "upload-refresh button-quiet", "Show the uploaded files");
          again.type = "button";
          again.addEventListener("click", reloadPage);
          status.parentNode.insertBefore(again, status.nextSibling);
        }
      } else if (failed) {
        say("Nothing was uploaded: see the message" + (failed === 1 ? "" : "s") + " above.");
      }
    }

    function send(item) {
      running += 1;
      item.view.state.textContent = "uploading";
      var xhr = new XMLHttpRequest();
      var data = new FormData();
      data.append("kind", item.kind);
      data.append("file", item.file, item.file.name);
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRFToken", token);
      xhr.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) {
          item.view.bar.max = event.total;
          item.view.bar.value = event.loaded;
        }
      });
      xhr.addEventListener("load", function () {
        if (xhr.status === 201) {
          succeed(item);
        } else {
          fail(item, messageFor(xhr, maxText));
        }
      });
      xhr.addEventListener("error", function () {
        // A body over the server's limit may be cut off before any answer arrives.
        var big = maxBytes && item.file.size > maxBytes;
        fail(item, big ? messageFor({ status: 413 }, maxText) :
          "The upload failed: check your connection and try again.");
      });
      xhr.addEventListener("abort", function () {
        fail(item, "The upload was stopped.");
      });
      xhr.addEventListener("loadend", function () {
        running -= 1;
        pump();
        finished();
      });
      xhr.send(data);
    }

    function pump() {
      while (running < AT_ONCE && waiting.length) {
        send(waiting.shift());
      }
    }

    function add(files) {
      if (!files || !files.length) {
        return;
      }
      var chosen = kind.value;
      var kindLabel = kind.options[kind.selectedIndex].text;
      var queued = 0;
      for (var i = 0; i < files.length; i += 1) {
        var file = files[i];
        var item = { file: file, kind: chosen, view: addRow(file, kindLabel) };
        if (maxBytes && file.size > maxBytes) {
          fail(item, file.name + " is " + humanSize(file.size) + ": the limit is " + maxText +
            ". Upload a smaller file, or split it.");
          continue;
        }
        waiting.push(item);
        queued += 1;
      }
      if (queued) {
        say("Uploading " + queued + " file" + (queued === 1 ? "" : "s") + "…");
      }
      pump();
      finished();
    }

    input.addEventListener("change", function () {
      add(input.files);
      input.value = ""; // the same file may be chosen again after a fix
    });

    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      zone.classList.add("dropzone-over");
    });
    zone.addEventListener("dragleave", function () {
      zone.classList.remove("dropzone-over");
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      zone.classList.remove("dropzone-over");
      add(event.dataTransfer && event.dataTransfer.files);
    });

    // A file dropped next to the zone must not replace the page with the file.
    window.addEventListener("dragover", function (event) {
      event.preventDefault();
    });
    window.addEventListener("drop", function (event) {
      event.preventDefault();
    });

    form.addEventListener("submit", function (event) {
      // Enter in the form: upload what is chosen through the same path.
      event.preventDefault();
      add(input.files);
      input.value = "";
    });
  }

  function start() {
    var forms = document.querySelectorAll("form[data-upload]");
    for (var i = 0; i < forms.length; i += 1) {
      setup(forms[i]);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
