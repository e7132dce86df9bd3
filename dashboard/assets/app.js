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

  function drawDeployment(d) {
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
    for (const [title, list] of [['History', d.history], ['Journal', d.journal]]) {
      if (list.length === 0) continue;
      parts.push(el('h2', {}, title), table(['Key', 'Record'], list.map((r) =>
        el('tr', {}, el('td', {}, r.key), el('td', {}, el('pre', {}, JSON.stringify(r.value, null, 2)))))));
    }
    show(parts);
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
  function drawController(c) {
    const link = connection || {};
    show(el('h1', {}, 'Controller'),
      el('h2', {}, 'Replicas'),
      c.replicas.length === 0 ? el('p', { class: 'muted' }, 'No replica takes part in the election.') :
        table(['Replica', 'Role', 'Campaigning since revision', 'First seen here'], c.replicas.map((r) => el('tr', {},
          el('td', {}, r.identity), el('td', {}, r.leading ? 'leader' : 'standby'),
          el('td', { class: 'num' }, r.since_revision), el('td', {}, r.seen_at ? clock(r.seen_at) + ' (' + ago(r.seen_at) + ')' : 'before this dashboard started')))),
      el('h2', {}, 'Watch of etcd'),
      el('dl', { class: 'facts' },
        el('dt', {}, 'State'), el('dd', { id: 'watch-state' }, text(link.link), ' since ', clock(link.since)),
        el('dt', {}, 'Revision applied'), el('dd', {}, text(link.revision)),
        el('dt', {}, 'Last change'), el('dd', {}, clock(link.last_change)),
        el('dt', {}, 'Last error'), el('dd', {}, text(link.error)),
        el('dt', {}, 'Key prefix'), el('dd', {}, c.prefix || '(none)')),
      c.facts.length === 0 ? null : el('h2', {}, 'This process'),
      c.facts.length === 0 ? null : el('dl', { class: 'facts' }, c.facts.map((f) => [el('dt', {}, f.name), el('dd', {}, f.value)])));
  }

  // ----- The event stream -----
  let last = null;
  function draw(snapshot) {
    last = snapshot;
    if (view === 'fleet') {
      fleet.rows = new Map(snapshot.rows.map((row) => [row.id, row]));
      scheduleFleet();
    } else if (view === 'deployment') drawDeployment(snapshot.deployment);
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
