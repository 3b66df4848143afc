// identity.js — after login: who am I (GET /api/whoami) and which server (GET /api/overview).

import { api } from './api.js';
import { session } from './session.js';
import { normalizeTags } from './format.js';
import { replace } from './dom.js';

/** Fill session.name/tags; rejects with the ApiError (401 for bad credentials). */
export async function loadIdentity() {
  const me = await api.get('/whoami');
  session.name = me.name;
  session.tags = normalizeTags(me.tags);
  api.get('/overview').then((o) => {
    const product = [o.product_name, o.product_version].filter(Boolean).join(' ');
    replace(document.getElementById('footer'), product, o.cluster_name ? ` · cluster ${o.cluster_name}` : '');
  }).catch(() => {});
}
