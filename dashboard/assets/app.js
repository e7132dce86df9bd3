// The dashboard's pages, drawn in the browser from the server's JSON views and kept current
// by its event stream. Every value is inserted as text (never as markup), so whatever a spec
// holds is shown, not run.
'use strict';
(function () {
  const PAGE_SIZE = 100;
  const main = document.getElementById('main');
  const connectionBadge = document.getElementById('connection');

  // An element with attributes and children; strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Replaces the page's content; absent parts (null) are left out.
  function show(...parts) {
    main.replaceChildren(...parts.flat(Infinity).filter((part) => part !== null && part !== undefined));
  }

  function text(value) { return value === undefined || value === null ? '–' : String(value); }

  function ago(when) {
    if (!when) return '–';
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(when)) / 1000));
    if (seconds < 60) return seconds + 's ago';
    if (seconds < 3600) return Math.floor(seconds / 60) + 'm ago';
    if (seconds < 86400) return Math.floor(seconds / 3600) + 'h ago';
    return Math.floor(seconds / 86400) + 'd ago';
  }

  function clock(when) { return when ? new Date(when).toLocaleTimeString() : 'never'; }

  function deploymentHref(id) {
    const [service, name] = id.split('/');
    return '/deployments/' + encodeURIComponent(service) + '/' + encodeURIComponent(name);
  }

  function labels(list) { return (list || []).map((label) => el('span', { class: 'label' }, label)); }

  // Which page this is.
  const path = location.pathname;
  let view = 'fleet';
  let id = null;
  if (path === '/services') view = 'services';
  else if (path === '/controller') view = 'controller';
  else if (path.startsWith('/deployments/')) {
    view = 'deployment';
    id = path.split('/').slice(2, 4).map(decodeURIComponent).join('/');
  }
  const nav = document.getElementById('nav-' + (view === 'deployment' ? 'fleet' : view));
  if (nav) nav.classList.add('current');

  // The connection: the feed's state from the server, and whether the server answers.
  let connection = null;
  let serverUp = false;
  function showConnection() {
    let link = connection ? connection.link : 'connecting';
    let words;
    if (!serverUp) {
      link = 'server-lost';
      words = 'Disconnected from the dashboard server; showing the state as of ' +
        clock(connection && connection.last_change) + ', not current';
    } else if (link === 'live') {
      words = 'Live · last change ' + clock(connection.last_change) + ' · revision ' + connection.revision;
    } else if (link === 'listing' && connection.error) {
      words = 'Disconnected from etcd since ' + clock(connection.since) + ' (' + connection.error +
        '); showing the state as of ' + clock(connection.last_change) + ', not current';
    } else if (link === 'listing') {
      words = 'Reading etcd…';
    } else if (link === 'idle') {
      words = 'Not watching etcd (no page was open); starting, not current';
    } else if (link === 'connecting' && !(connection && connection.error)) {
      words = 'Connecting to etcd…';
    } else {
      words = 'Disconnected: connecting to etcd' + (connection && connection.error ? ' (' + connection.error + ')' : '');
    }
    document.body.dataset.link = link;
    connectionBadge.textContent = words;
    connectionBadge.title = words;
  }

  // ----- Fleet -----
  const fleet = { rows: new Map(), sort: 'id', descending: false, page: 0, pending: false, built: false };
  const COLUMNS = [
    ['id', 'Deployment'], ['labels', 'Labels'], ['desired_revision', 'Desired rev', 'num'],
    ['observed_revision', 'Observed rev', 'num'], ['desired', 'Desired', 'num'],
    ['running', 'Running', 'num'], ['healthy', 'Healthy', 'num'], ['phase', 'Phase'],
    ['blocking', 'Blocking'], ['changed_at', 'Changed'],
  ];

  function buildFleet() {
    main.replaceChildren(
      el('h1', {}, 'Fleet'),
      el('div', { class: 'controls' },
        el('input', { id: 'filter', type: 'search', placeholder: 'Filter: name, label, phase, reason…' }),
        el('select', { id: 'filter-service' }), el('select', { id: 'filter-label' }),
        el('select', { id: 'filter-phase' }),
        el('span', { id: 'count', class: 'muted' })),
      el('table', { id: 'fleet' },
        el('thead', {}, el('tr', {}, COLUMNS.map(([key, title, kind]) =>
          el('th', { class: 'sortable ' + (kind || ''), 'data-sort': key }, title)))),
        el('tbody', {})),
      el('div', { class: 'pager' },
        el('button', { id: 'prev' }, '‹ Previous'), el('span', { id: 'page' }),
        el('button', { id: 'next' }, 'Next ›')));
    for (const input of ['filter', 'filter-service', 'filter-label', 'filter-phase']) {
      document.getElementById(input).addEventListener('input', () => { fleet.page = 0; drawFleet(); });
    }
    main.querySelectorAll('th.sortable').forEach((th) => th.addEventListener('click', () => {
      const key = th.dataset.sort;
      fleet.descending = fleet.sort === key ? !fleet.descending : false;
      fleet.sort = key;
      drawFleet();
    }));
    document.getElementById('prev').addEventListener('click', () => { fleet.page = Math.max(0, fleet.page - 1); drawFleet(); });
    document.getElementById('next').addEventListener('click', () => { fleet.page += 1; drawFleet(); });
    fleet.built = true;
  }

  function fillSelect(select, all, values) {
    const chosen = select.value;
    select.replaceChildren(el('option', { value: '' }, all), ...[...values].sort().map((v) => el('option', { value: v }, v)));
    select.value = values.has(chosen) ? chosen : '';
  }

  function sortValue(row, key) {
    if (key === 'labels') return (row.labels || []).join(',');
    const value = row[key];
    return value === undefined || value === null ? '' : value;
  }

  function drawFleet() {
    fleet.pending = false;
    if (!fleet.built) buildFleet();
    const rows = [...fleet.rows.values()];
    fillSelect(document.getElementById('filter-service'), 'every service', new Set(rows.map((r) => r.service)));
    fillSelect(document.getElementById('filter-label'), 'every label', new Set(rows.flatMap((r) => r.labels || [])));
    fillSelect(document.getElementById('filter-phase'), 'every phase', new Set(rows.map((r) => r.phase)));
    const words = document.getElementById('filter').value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const service = document.getElementById('filter-service').value;
    const label = document.getElementById('filter-label').value;
    const phase = document.getElementById('filter-phase').value;
    const shown = rows.filter((row) => {
      if (service && row.service !== service) return false;
      if (label && !(row.labels || []).includes(label)) return false;
      if (phase && row.phase !== phase) return false;
      if (words.length) {
        const hay = [row.id, row.phase, row.blocking || '', ...(row.labels || [])].join(' ').toLowerCase();
        return words.every((word) => hay.includes(word));
      }
      return true;
    });
    const direction = fleet.descending ? -1 : 1;
    shown.sort((a, b) => {
      const x = sortValue(a, fleet.sort);
      const y = sortValue(b, fleet.sort);
      const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return order !== 0 ? order * direction : a.id.localeCompare(b.id);
    });
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    fleet.page = Math.min(fleet.page, pages - 1);
    const start = fleet.page * PAGE_SIZE;
    const body = main.querySelector('#fleet tbody');
    body.replaceChildren(...shown.slice(start, start + PAGE_SIZE).map((row) =>
      el('tr', { 'data-id': row.id },
        el('td', {}, el('a', { href: deploymentHref(row.id) }, row.id)),
        el('td', {}, labels(row.labels)),
        el('td', { class: 'num' }, text(row.desired_revision)),
        el('td', { class: 'num' }, text(row.observed_revision)),
        el('td', { class: 'num desired' }, text(row.desired)),
        el('td', { class: 'num running' }, text(row.running)),
        el('td', { class: 'num healthy' }, text(row.healthy)),
        el('td', { class: 'phase phase-' + row.phase }, row.phase),
        el('td', { class: 'blocking' }, row.blocking || ''),
        el('td', { title: row.changed_at || '' }, ago(row.changed_at)))));
    main.querySelectorAll('th.sortable').forEach((th) => {
      th.classList.toggle('sorted-asc', th.dataset.sort === fleet.sort && !fleet.descending);
      th.classList.toggle('sorted-desc', th.dataset.sort === fleet.sort && fleet.descending);
    });
    document.getElementById('count').textContent = shown.length + ' of ' + rows.length + ' deployments';
    document.getElementById('page').textContent = 'page ' + (fleet.page + 1) + ' of ' + pages;
    document.getElementById('prev').disabled = fleet.page === 0;
    document.getElementById('next').disabled = fleet.page >= pages - 1;
  }

  function scheduleFleet() {
    if (fleet.pending) return;
    fleet.pending = true;
    requestAnimationFrame(drawFleet);
  }

  // ----- Deployment -----
  function table(headers, rows) {
    return el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows));
  }

  function drawDeployment(d, actions) {
    const row = d.row;
    const parts = [
      el('h1', {}, 'Deployment ', row.id),
      d.exists ? null : el('p', { class: 'error' }, 'No deployment ', row.id, ' in etcd.'),
      el('dl', { class: 'facts' },
        el('dt', {}, 'Phase'), el('dd', { id: 'phase', class: 'phase-' + row.phase }, row.phase),
        el('dt', {}, 'Blocking'), el('dd', { class: 'blocking' }, row.blocking || '–'),
        el('dt', {}, 'Labels'), el('dd', {}, labels(row.labels)),
        el('dt', {}, 'Revisions'), el('dd', {}, 'desired ', text(row.desired_revision), ', observed ', text(row.observed_revision)),
        el('dt', {}, 'Instances'), el('dd', { id: 'instances' }, d.instances
          ? [d.instances.desired, ' desired, ', d.instances.running, ' running, ', d.instances.healthy, ' healthy, ',
            d.instances.staged, ' staged, ', d.instances.unhealthy, ' unhealthy'] : '–'),
        el('dt', {}, 'Marathon app'), el('dd', {}, text(d.app_id), d.app_version ? ' @ ' + d.app_version : ''),
        el('dt', {}, 'Status written'), el('dd', {}, d.status_updated_at ? ago(d.status_updated_at) : '–'),
        el('dt', {}, 'Last change'), el('dd', {}, ago(row.changed_at))),
      actions ? actionPanel(d) : null,
      el('h2', {}, 'Tasks'),
      d.tasks.length === 0 ? el('p', { class: 'muted' }, 'No tasks.') :
        el('table', { id: 'tasks' },
          el('thead', {}, el('tr', {}, ['Task', 'Host', 'Ports', 'State', 'Health', 'Age'].map((h) => el('th', {}, h)))),
          el('tbody', {}, d.tasks.map((t) => el('tr', { 'data-task': t.task_id },
            el('td', {}, t.task_id),
            el('td', {}, t.host),
            el('td', {}, t.ports.map((p) => el('span', {}, el('a', { href: p.url, target: '_blank', rel: 'noopener' },
              p.name, ' ', p.host_port), ' (', p.container_port, '/', p.protocol, ') '))),
            el('td', {}, t.state, t.unreadable ? el('div', { class: 'error' }, 'unreadable record: ', t.unreadable) : null),
            el('td', {}, t.health),
            el('td', { title: t.started_at || '' }, ago(t.started_at || t.staged_at)))))),
      el('h2', {}, 'Last task failure'),
      d.last_task_failure
        ? el('p', { id: 'last-failure', class: 'error' }, d.last_task_failure.state, ' on ', d.last_task_failure.host, ' (',
          d.last_task_failure.task_id, ', ', d.last_task_failure.timestamp, '): ', d.last_task_failure.message)
        : el('p', { class: 'muted' }, 'None reported.'),
      el('h2', {}, 'Conditions'),
      d.conditions.length === 0 ? el('p', { class: 'muted' }, 'None reported.') :
        table(['Kind', 'Holds', 'Reason', 'Message'], d.conditions.map((c) =>
          el('tr', {}, el('td', {}, c.type), el('td', {}, c.status ? 'yes' : 'no'), el('td', {}, c.reason), el('td', {}, c.message)))),
      el('h2', {}, 'Spec'),
      d.spec_errors ? el('p', { class: 'error' }, d.spec_errors) : null,
      el('pre', { id: 'spec' }, d.spec === null ? 'No spec under /desired.' : JSON.stringify(d.spec, null, 2)),
    ];
    if (d.history.length > 0) parts.push(diffPanel(d));
    for (const [title, list] of [['History', d.history], ['Journal', d.journal]]) {
      if (list.length === 0) continue;
      parts.push(el('h2', {}, title), table(['Key', 'Record'], list.map((r) =>
        el('tr', {}, el('td', {}, r.key), el('td', {}, el('pre', {}, JSON.stringify(r.value, null, 2)))))));
    }
    show(parts);
  }

  function deploymentApi(rest) {
    const [service, name] = id.split('/');
    return '/api/deployments/' + encodeURIComponent(service) + '/' + encodeURIComponent(name) + rest;
  }

  // The revisions recorded in the history, newest first.
  function recordedRevisions(d) {
    return d.history.map((r) => r.key).sort((a, b) => Number(b) - Number(a));
  }

  // ----- Actions (only with --dashboard-actions) -----
  // The panel is drawn for the revision the page shows; while a person edits it (a changed
  // field), live redraws keep it as it is, so the action still names the revision its
  // edit began from and a concurrent change is refused, not overwritten.
  const actionState = { panel: null, revision: null, dirty: false, result: null };

  function actionPanel(d) {
    const revision = d.row.desired_revision;
    if (actionState.dirty && actionState.panel) {
      actionState.panel.querySelector('#action-stale').textContent = revision === actionState.revision ? '' :
        'The spec changed since this form was drawn (it is at revision ' + text(revision) +
        ' now); an action sent from it will be refused.';
      return [resultNotice(), actionState.panel];
    }
    if (!d.exists || revision === null || revision === undefined) {
      actionState.panel = null;
      return [resultNotice(), el('p', { class: 'muted' }, 'No spec under /desired to act on.')];
    }
    const paused = !!(d.spec && d.spec.paused === true);
    const instances = el('input', { id: 'scale-instances', type: 'number', min: 0, max: 10000, value: text(d.row.desired) });
    const undoTo = el('select', { id: 'undo-revision' }, el('option', { value: '' }, 'the previous revision that ran'),
      recordedRevisions(d).map((r) => el('option', { value: r }, 'revision ' + r)));
    const scale = el('button', { id: 'scale' }, 'Scale');
    const pause = el('button', { id: paused ? 'resume' : 'pause' }, paused ? 'Resume' : 'Pause');
    const undo = el('button', { id: 'undo' }, 'Undo');
    const panel = el('section', { id: 'actions', 'data-revision': revision },
      el('h2', {}, 'Actions'),
      el('p', { class: 'muted' }, 'Each action writes /desired only if it is still at revision ', revision,
        ', the one this page shows.'),
      el('div', { class: 'controls' },
        el('label', {}, 'Instances ', instances), scale,
        el('span', { class: 'gap' }), pause,
        el('span', { class: 'gap' }), el('label', {}, 'Undo to ', undoTo), undo),
      el('p', { id: 'action-stale', class: 'error' }));
    const edited = () => { actionState.dirty = true; };
    instances.addEventListener('input', edited);
    undoTo.addEventListener('change', edited);
    scale.addEventListener('click', () => act({ action: 'scale', instances: Number(instances.value) }));
    pause.addEventListener('click', () => act({ action: paused ? 'resume' : 'pause' }));
    undo.addEventListener('click', () => act(undoTo.value === '' ? { action: 'undo' } :
      { action: 'undo', to_revision: Number(undoTo.value) }));
    actionState.panel = panel;
    actionState.revision = revision;
    actionState.dirty = false;
    return [resultNotice(), panel];
  }

  function resultNotice() {
    const result = actionState.result;
    if (!result) return null;
    let words = result.message;
    if (result.outcome === 'conflict') {
      words = 'Someone changed the spec since this page showed it: ' + result.message +
        '. The page shows the spec as it is now.';
    }
    return el('p', { id: 'action-result', class: 'notice notice-' + result.outcome, 'data-outcome': result.outcome }, words);
  }

  async function act(body) {
    const panel = actionState.panel;
    if (panel) panel.querySelectorAll('button').forEach((button) => { button.disabled = true; });
    actionState.result = { outcome: 'pending', message: 'Sending ' + body.action + '…' };
    const notice = document.getElementById('action-result');
    if (notice) notice.replaceWith(resultNotice());
    let result;
    try {
      const response = await fetch(deploymentApi('/actions'), {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-Theseus-Dashboard': 'action' },
        body: JSON.stringify(Object.assign({ revision: actionState.revision }, body)),
      });
      result = await response.json().catch(() => ({ outcome: 'refused', message: 'HTTP ' + response.status }));
    } catch (error) {
      result = { outcome: 'refused', message: 'The dashboard server did not answer (' + error + '); nothing is known to be written.' };
    }
    actionState.result = result;
    actionState.dirty = false;
    actionState.panel = null;
    if (last) drawDeployment(last.deployment, last.actions);
  }

  // ----- Revision diff -----
  const diffState = { from: null, to: null, answer: null, error: null };

  function diffPanel(d) {
    const revisions = recordedRevisions(d);
    const choices = [...revisions.map((r) => [r, 'revision ' + r]), ['desired', 'the spec in /desired now']];
    const valid = (value) => choices.some(([v]) => v === value);
    if (!valid(diffState.from)) diffState.from = revisions[1] || revisions[0];
    if (!valid(diffState.to)) diffState.to = revisions[0];
    const pick = (name, chosen) => {
      const select = el('select', { id: 'diff-' + name }, choices.map(([v, words]) => el('option', { value: v }, words)));
      select.value = chosen;
      select.addEventListener('change', () => { diffState[name] = select.value; });
      return select;
    };
    const button = el('button', { id: 'diff-show' }, 'Compare');
    button.addEventListener('click', async () => {
      const query = '?from=' + encodeURIComponent(diffState.from) + '&to=' + encodeURIComponent(diffState.to);
      try {
        const response = await fetch(deploymentApi('/diff' + query));
        if (response.ok) {
          diffState.answer = await response.json();
          diffState.error = null;
        } else {
          diffState.answer = null;
          diffState.error = await response.text();
        }
      } catch (error) {
        diffState.answer = null;
        diffState.error = 'The dashboard server did not answer (' + error + ')';
      }
      if (last) drawDeployment(last.deployment, last.actions);
    });
    let result = null;
    if (diffState.error) result = el('p', { id: 'diff-error', class: 'error' }, diffState.error);
    else if (diffState.answer) {
      const a = diffState.answer;
      const changed = a.lines.filter((line) => line.change !== 'kept').length;
      const mark = { kept: '  ', removed: '- ', added: '+ ' };
      result = [
        el('p', { class: 'muted' }, changed === 0 ? 'No line differs between ' + a.from + ' and ' + a.to + '.' :
          changed + ' lines differ: − ' + a.from + ', + ' + a.to + '.'),
        el('pre', { id: 'diff' }, a.lines.map((line) =>
          el('span', { class: 'diff-' + line.change }, mark[line.change] + line.text + '\n'))),
      ];
    }
    return [el('h2', {}, 'Compare revisions'),
      el('div', { class: 'controls' }, pick('from', diffState.from), el('span', {}, 'with'), pick('to', diffState.to), button),
      result];
  }


  // ----- Services -----
  function drawServices(services) {
    show(el('h1', {}, 'Services'),
      services.length === 0 ? el('p', { class: 'muted' }, 'No services.') : null,
      ...services.map((s) => el('section', { 'data-service': s.service },
        el('h2', {}, s.service),
        el('p', {}, el('code', {}, s.command), ' answers:'),
        s.error ? el('p', { class: 'error' }, s.error) :
          table(['Endpoint', 'Deployment', 'Labels', 'Task'], s.lines.map((line) => el('tr', {},
            el('td', {}, el('code', {}, line.address)),
            el('td', {}, el('a', { href: deploymentHref(s.service + '/' + line.deployment) }, line.deployment)),
            el('td', {}, labels(line.labels)),
            el('td', {}, line.task_id)))),
        el('p', { class: 'muted' }, 'Deployments: ', s.deployments.map((name, i) =>
          [i ? ', ' : '', el('a', { href: deploymentHref(s.service + '/' + name) }, name)])))));
  }

  // ----- Controller -----
  // How far behind etcd the watch is: etcd's revision at the feed's last question, against
  // the revision the watch has applied since.
  function watchLag(link, probe) {
    if (link.link !== 'live') return 'not watching (' + text(link.link) + '): what the pages show is not current';
    if (!probe || probe.revision === null || probe.revision === undefined) return 'unknown: etcd has not answered a question yet';
    const behind = Math.max(0, probe.revision - link.revision);
    const asked = 'etcd answered revision ' + probe.revision + ' at ' + clock(probe.at);
    if (behind === 0) return 'caught up: the watch has applied revision ' + link.revision + ' (' + asked + ')';
    return behind + ' revisions: the watch has applied revision ' + link.revision + ' (' + asked + ')';
  }

  function drawController(c) {
    const link = connection || {};
    const probe = c.etcd;
    show(el('h1', {}, 'Controller'),
      el('h2', {}, 'Replicas'),
      c.replicas.length === 0 ? el('p', { class: 'muted' }, 'No replica takes part in the election.') :
        table(['Replica', 'Role', 'Campaigning since revision', 'First seen here'], c.replicas.map((r) => el('tr', {},
          el('td', {}, r.identity), el('td', {}, r.leading ? 'leader' : 'standby'),
          el('td', { class: 'num' }, r.since_revision), el('td', {}, r.seen_at ? clock(r.seen_at) + ' (' + ago(r.seen_at) + ')' : 'before this dashboard began watching')))),
      el('h2', {}, 'Watch of etcd'),
      el('dl', { class: 'facts' },
        el('dt', {}, 'State'), el('dd', { id: 'watch-state' }, text(link.link), ' since ', clock(link.since)),
        el('dt', {}, 'Revision applied'), el('dd', {}, text(link.revision)),
        el('dt', {}, 'Last change'), el('dd', {}, clock(link.last_change)),
        el('dt', {}, 'Behind etcd by'), el('dd', { id: 'watch-lag' }, watchLag(link, probe)),
        el('dt', {}, 'etcd'), el('dd', { id: 'etcd-reachable' }, !probe ? 'not asked yet' : probe.error
          ? 'did not answer at ' + clock(probe.at) + ': ' + probe.error : 'answered at ' + clock(probe.at)),
        el('dt', {}, 'Last error'), el('dd', {}, text(link.error)),
        el('dt', {}, 'Key prefix'), el('dd', {}, c.prefix || '(none)')),
      el('h2', {}, 'This process'),
      c.controller
        ? el('dl', { id: 'host-facts', class: 'facts' }, c.facts.map((f) => [el('dt', {}, f.name), el('dd', {}, f.value)]))
        : el('p', { id: 'host-note', class: 'muted' }, 'Served by theseus dashboard, which reaches only etcd: ',
          'Marathon reachability and the work queues are shown by a controller\'s own dashboard, at its --listen address.'));
  }

  // ----- The event stream -----
  let last = null;
  function draw(snapshot) {
    last = snapshot;
    if (view === 'fleet') {
      fleet.rows = new Map(snapshot.rows.map((row) => [row.id, row]));
      scheduleFleet();
    } else if (view === 'deployment') drawDeployment(snapshot.deployment, snapshot.actions);
    else if (view === 'services') drawServices(snapshot.services);
    else drawController(snapshot);
  }

  const query = '/api/events?view=' + view + (id ? '&id=' + encodeURIComponent(id) : '');
  const events = new EventSource(query);
  events.onopen = () => { serverUp = true; showConnection(); };
  events.onerror = () => { serverUp = false; showConnection(); };
  events.addEventListener('snapshot', (e) => {
    const snapshot = JSON.parse(e.data);
    serverUp = true;
    connection = snapshot.connection;
    showConnection();
    draw(snapshot);
  });
  events.addEventListener('rows', (e) => {
    const change = JSON.parse(e.data);
    connection = change.connection;
    showConnection();
    for (const row of change.upsert) fleet.rows.set(row.id, row);
    for (const gone of change.remove) fleet.rows.delete(gone);
    scheduleFleet();
  });
  events.addEventListener('connection', (e) => {
    connection = JSON.parse(e.data);
    showConnection();
    if (view === 'controller' && last) drawController(last);
  });
  // Ages ("5s ago") move on without changes.
  setInterval(() => { if (view === 'fleet' && fleet.built) scheduleFleet(); }, 5000);
  showConnection();
})();
