/*
 * Compare page: shows one pair, records the vote, shows the next pair.
 *
 * The server sends the pair to show (`comparison`) and the pair that will
 * follow it (`upcoming`). The upcoming clips are loaded into hidden elements
 * as soon as the current pair plays. When the vote response names the same
 * clips, those elements move into view, so the next pair appears without
 * waiting for the network. The server keeps the promise that `upcoming` is
 * the pair it serves next unless the pool changed in between.
 *
 * Every string shown to the rater comes translated from the page (the
 * #salon-config JSON) or from the server's JSON answers.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("salon-config").textContent);
  var strings = config.strings;

  var elements = {
    pair: document.getElementById("pair"),
    controls: document.getElementById("controls"),
    status: document.getElementById("status"),
    end: document.getElementById("end"),
    endMessage: document.getElementById("end-message"),
    restart: document.getElementById("restart"),
    progressBar: document.getElementById("progress-bar"),
    progressFill: document.getElementById("progress-fill"),
    progressText: document.getElementById("progress-text"),
    completion: document.getElementById("completion"),
    completionCode: document.getElementById("completion-code"),
    returnWrapper: document.getElementById("return-wrapper"),
    returnLink: document.getElementById("return-link"),
    preload: document.getElementById("preload"),
    sides: {
      left: document.getElementById("clip-left"),
      right: document.getElementById("clip-right")
    },
    buttons: Array.prototype.slice.call(document.querySelectorAll("button.vote"))
  };

  var KEY_CHOICES = { ArrowLeft: "left", ArrowRight: "right", ArrowDown: "tie", s: "skip", S: "skip" };

  // State of the pair on screen.
  var current = null;        // the comparison object from the server
  var shownAt = 0;           // performance.now() when both clips were ready
  var mediaFailed = false;   // a clip failed to load: only skip is allowed
  var enableTimer = null;
  var busy = false;
  var showCounter = 0;       // discards a slow load that a newer pair replaced
  var preloaded = {};        // clip id -> hidden media element, loaded ahead

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (match, name) {
      return String(values[name]);
    });
  }

  function setStatus(text) {
    elements.status.textContent = text || "";
  }

  function setButtons(enabled) {
    elements.buttons.forEach(function (button) {
      var allowed = enabled && (!mediaFailed || button.dataset.choice === "skip");
      button.disabled = !allowed;
    });
  }

  function createMedia(clip) {
    var node;
    if (clip.kind === "video") {
      node = document.createElement("video");
      // Autoplay is only allowed muted; the attributes keep the state visible in the DOM too.
      node.muted = true;
      node.defaultMuted = true;
      node.loop = true;
      node.playsInline = true;
      node.preload = "auto";
      node.setAttribute("muted", "");
      node.setAttribute("loop", "");
      node.setAttribute("playsinline", "");
      if (clip.poster) {
        node.poster = clip.poster;
      }
    } else {
      node = document.createElement("img");
      node.decoding = "async";
      node.alt = clip.caption || "";
    }
    node.className = "media";
    node.dataset.clipId = String(clip.id);
    if (clip.width && clip.height) {
      node.width = clip.width;
      node.height = clip.height;
    }
    node.src = clip.src;
    return node;
  }

  function takeMedia(clip) {
    var node = preloaded[clip.id];
    if (node && node.getAttribute("src") === clip.src) {
      delete preloaded[clip.id];
      return node;
    }
    return createMedia(clip);
  }

  function whenReady(node) {
    return new Promise(function (resolve, reject) {
      if (node.tagName === "VIDEO") {
        // HAVE_FUTURE_DATA: playback can start without stalling at once.
        if (node.readyState >= 3) {
          resolve();
          return;
        }
        node.addEventListener("canplay", function () { resolve(); }, { once: true });
        node.addEventListener("error", function () { reject(new Error("video")); }, { once: true });
        return;
      }
      if (node.complete && node.naturalWidth > 0) {
        resolve();
        return;
      }
      node.addEventListener("load", function () { resolve(); }, { once: true });
      node.addEventListener("error", function () { reject(new Error("image")); }, { once: true });
    });
  }

  function videosOnScreen() {
    return Array.prototype.slice.call(elements.pair.querySelectorAll("video"));
  }

  function playTogether(videos) {
    videos.forEach(function (video) {
      video.pause();
      video.currentTime = 0;
    });
    return Promise.all(videos.map(function (video) {
      return video.play().catch(function () { /* the poster stays; the vote still counts */ });
    }));
  }

  function clearPair() {
    videosOnScreen().forEach(function (video) { video.pause(); });
    ["left", "right"].forEach(function (side) {
      var figure = elements.sides[side];
      figure.querySelector(".media-slot").replaceChildren();
      figure.querySelector(".caption").textContent = "";
      delete figure.dataset.clipId;
    });
  }

  function preload(upcoming) {
    var keep = {};
    if (upcoming) {
      [upcoming.left, upcoming.right].forEach(function (clip) {
        keep[clip.id] = true;
        if (!preloaded[clip.id]) {
          var node = createMedia(clip);
          preloaded[clip.id] = node;
          elements.preload.appendChild(node);
          if (node.tagName === "VIDEO") {
            node.load();
          }
        }
      });
    }
    Object.keys(preloaded).forEach(function (id) {
      if (!keep[id]) {
        preloaded[id].remove();
        delete preloaded[id];
      }
    });
  }

  function showProgress(progress) {
    if (progress.daily_goal > 0) {
      var percent = Math.min(100, Math.round((100 * progress.judged_today) / progress.daily_goal));
      elements.progressBar.hidden = false;
      elements.progressBar.setAttribute("aria-valuemax", String(progress.daily_goal));
      elements.progressBar.setAttribute("aria-valuenow", String(progress.judged_today));
      elements.progressFill.style.width = percent + "%";
      elements.progressText.textContent = format(strings.progressGoal, {
        today: progress.judged_today, goal: progress.daily_goal
      });
    } else {
      elements.progressBar.hidden = true;
      elements.progressText.textContent = format(strings.progressTotal, { total: progress.judged_total });
    }
  }

  function showCompletion(completion) {
    if (!completion) {
      elements.completion.hidden = true;
      return;
    }
    elements.completion.hidden = false;
    elements.completionCode.textContent = completion.code;
    elements.completionCode.hidden = !completion.code;
    elements.returnWrapper.hidden = !completion.return_url;
    if (completion.return_url) {
      elements.returnLink.href = completion.return_url;
    }
  }

  function showEnd(end) {
    current = null;
    clearTimeout(enableTimer);
    clearPair();
    preload(null);
    elements.pair.hidden = true;
    elements.controls.hidden = true;
    elements.end.hidden = false;
    elements.endMessage.textContent = end.message;
    setStatus("");
  }

  function showPair(data) {
    var comparison = data.comparison;
    var counter = ++showCounter;
    clearTimeout(enableTimer);
    mediaFailed = false;
    setButtons(false);
    clearPair();
    current = comparison;
    elements.end.hidden = true;
    elements.pair.hidden = false;
    elements.controls.hidden = false;
    setStatus(strings.loading);

    var nodes = ["left", "right"].map(function (side) {
      var clip = comparison[side];
      var figure = elements.sides[side];
      var node = takeMedia(clip);
      figure.dataset.clipId = String(clip.id);
      figure.querySelector(".media-slot").appendChild(node);
      figure.querySelector(".caption").textContent = clip.caption || "";
      return node;
    });
    var videos = nodes.filter(function (node) { return node.tagName === "VIDEO"; });
    elements.restart.hidden = videos.length === 0;

    Promise.all(nodes.map(whenReady))
      .then(function () {
        if (counter !== showCounter) {
          return null;
        }
        // Both can play: start them on the same frame.
        return playTogether(videos).then(function () { return true; });
      })
      .catch(function () {
        if (counter === showCounter) {
          mediaFailed = true;
          return true;
        }
        return null;
      })
      .then(function (shown) {
        if (!shown || counter !== showCounter) {
          return;
        }
        shownAt = performance.now();
        setStatus(mediaFailed ? strings.mediaError : "");
        enableTimer = setTimeout(function () { setButtons(true); }, data.min_view_ms);
        preload(data.upcoming);
      });
  }

  function render(data) {
    showProgress(data.progress);
    showCompletion(data.completion);
    if (data.end) {
      showEnd(data.end);
    } else if (data.comparison) {
      showPair(data);
    }
  }

  function errorMessage(body) {
    return body && body.error ? body.error.message : "";
  }

  function loadNext() {
    return fetch(config.nextUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            setStatus(errorMessage(body) || strings.networkError);
            return;
          }
          render(body);
        });
      })
      .catch(function () { setStatus(strings.networkError); });
  }

  function retryLater(seconds) {
    clearTimeout(enableTimer);
    enableTimer = setTimeout(function () { setButtons(true); }, Math.max(1, seconds) * 1000);
  }

  function vote(choice) {
    if (!current || busy) {
      return;
    }
    var button = elements.buttons.filter(function (b) { return b.dataset.choice === choice; })[0];
    if (!button || button.disabled) {
      return;
    }
    busy = true;
    setButtons(false);
    var body = {
      comparison: current.id,
      choice: choice,
      client_ms: Math.max(0, Math.round(performance.now() - shownAt))
    };
    fetch(config.voteUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": config.csrfToken },
      body: JSON.stringify(body)
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (response.ok) {
            render(answer.next);
            return;
          }
          var reason = errorMessage(answer);
          setStatus(format(strings.voteRejected, { reason: reason }));
          if (response.status === 422 || response.status === 429) {
            retryLater(parseInt(response.headers.get("Retry-After") || "1", 10));
          } else if (response.status >= 500) {
            setButtons(true);
          } else {
            // The pair is answered, gone or not ours: ask the server what to show now.
            loadNext();
          }
        });
      })
      .catch(function () {
        setStatus(strings.networkError);
        setButtons(true);
      })
      .then(function () { busy = false; });
  }

  elements.buttons.forEach(function (button) {
    button.addEventListener("click", function () {
      // A focused button would take the next Enter or Space as a vote on the next pair.
      button.blur();
      vote(button.dataset.choice);
    });
  });

  elements.restart.addEventListener("click", function () {
    playTogether(videosOnScreen());
  });

  document.addEventListener("keydown", function (event) {
    if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") {
      return;
    }
    var choice = KEY_CHOICES[event.key];
    if (!choice) {
      return;
    }
    event.preventDefault();
    vote(choice);
  });

  loadNext();
})();
