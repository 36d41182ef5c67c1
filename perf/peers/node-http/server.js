'use strict';
/**
 * The project's original Node HTTP stack (design journal v1.3, sections 2.4, 3.3, 3.4, 4.3 and
 * 5.3 to 5.5): express, a `pg` Pool of 20 (DatabaseService: pool.connect(), client.query(),
 * client.release() per query), the journal's project routes on /api/projects, and an ioredis
 * client (RedisService, lazyConnect) whose getCachedMetadata() serves GET /api/metadata/:filename.
 * `python -m perf http-crud --peer node` and `--ab` run it in place of (or next to) `nve serve`,
 * on a database holding the journal's schema (sql/001_initial_schema.sql, its indexes and its
 * updated_at trigger), so both are measured by the same harness on the same day.
 *
 * Added for the harness: DATABASE_URL / REDIS_URL instead of POSTGRES_* / REDIS_HOST (the
 * journal's variables are still read when those are unset), application_name
 * 'nve-peer-node-http' on every PostgreSQL connection (the harness finds its backends by it),
 * GET /healthz, and the routes the journal does not print (GET list, GET :id, DELETE; see README).
 *
 *     node server.js [--host 127.0.0.1] [--port 3001] [--quiet]
 */

const http = require('node:http');
const { parseArgs } = require('node:util');
const express = require('express');
const { Pool } = require('pg');
const Redis = require('ioredis');

const { values: options } = parseArgs({
  options: {
    host: { type: 'string', default: process.env.HOST ?? '127.0.0.1' },
    port: { type: 'string', default: process.env.PORT ?? '3001' },
    quiet: { type: 'boolean', default: false },
  },
});
const log = options.quiet ? () => {} : console.log;

/** The journal's DatabaseService (5.3): a Pool of 20, one pool.connect()/release() per query. */
class DatabaseService {
  constructor() {
    const connection = process.env.DATABASE_URL
      ? { connectionString: process.env.DATABASE_URL }
      : {
          host: process.env.POSTGRES_HOST || 'localhost',
          port: parseInt(process.env.POSTGRES_PORT || '5432'),
          database: process.env.POSTGRES_DB || 'video-editor',
          user: process.env.POSTGRES_USER || 'postgres',
          password: process.env.POSTGRES_PASSWORD || 'postgres',
        };
    this.pool = new Pool({
      ...connection,
      application_name: 'nve-peer-node-http', // added: the harness finds these backends by it
      max: 20,
      idleTimeoutMillis: 30000,
      connectionTimeoutMillis: 2000,
    });

    this.pool.on('error', (err) => {
      console.error('Unexpected error on idle client', err);
    });
  }

  async query(text, params) {
    const client = await this.pool.connect();
    try {
      const result = await client.query(text, params);
      return result.rows;
    } finally {
      client.release();
    }
  }

  async queryOne(text, params) {
    const rows = await this.query(text, params);
    return rows.length > 0 ? rows[0] : null;
  }
}

/** The journal's RedisService (5.5): lazyConnect, a capped retry, setex with a TTL, metadata:{filename}. */
class RedisService {
  constructor() {
    const settings = {
      retryStrategy: (times) => Math.min(times * 50, 2000),
      lazyConnect: true,
    };
    this.SESSION_TTL = 3600;
    this.client = process.env.REDIS_URL
      ? new Redis(process.env.REDIS_URL, settings)
      : new Redis({
          host: process.env.REDIS_HOST || 'localhost',
          port: parseInt(process.env.REDIS_PORT || '6379'),
          password: process.env.REDIS_PASSWORD,
          ...settings,
        });

    this.client.on('error', (err) => {
      console.error('Redis error:', err);
    });
  }

  async set(key, value, ttl) {
    const expiry = ttl || this.SESSION_TTL;
    await this.client.setex(key, expiry, value);
  }

  async get(key) {
    return await this.client.get(key);
  }

  async cacheMetadata(filename, metadata) {
    await this.set(`metadata:${filename}`, JSON.stringify(metadata), 3600);
  }

  async getCachedMetadata(filename) {
    const data = await this.get(`metadata:${filename}`);
    return data ? JSON.parse(data) : null;
  }
}

const db = new DatabaseService();
const redis = new RedisService();

/** The journal's project routes (5.4, 4.3.2-4.3.4), mounted on /api/projects. */
const router = express.Router();

router.post('/', async (req, res) => {
  try {
    const { name, description, videoFilename, videoUrl, timelineState } = req.body ?? {};

    if (!name || !videoFilename || !videoUrl) {
      res.status(400).json({
        error: 'Missing required fields: name, videoFilename, videoUrl',
      });
      return;
    }

    const project = await db.queryOne(
      `INSERT INTO projects (name, description, video_filename, video_url, timeline_state)
       VALUES ($1, $2, $3, $4, $5)
       RETURNING *`,
      [name, description || null, videoFilename, videoUrl, JSON.stringify(timelineState || {})]
    );

    res.status(201).json(project);
  } catch (error) {
    console.error('Create project error:', error);
    res.status(500).json({ error: 'Failed to create project' });
  }
});

// Not printed by the journal: every row, newest change first, in the columns of its 4.3.3 example.
router.get('/', async (req, res) => {
  try {
    const projects = await db.query(
      `SELECT id, name, video_url, created_at, updated_at
       FROM projects
       ORDER BY updated_at DESC`
    );
    res.json(projects);
  } catch (error) {
    console.error('List projects error:', error);
    res.status(500).json({ error: 'Failed to list projects' });
  }
});

// Not printed by the journal: the row (its 4.2.1 Project), 404 when there is none.
router.get('/:id', async (req, res) => {
  try {
    const project = await db.queryOne('SELECT * FROM projects WHERE id = $1', [req.params.id]);
    if (!project) {
      res.status(404).json({ error: 'Project not found' });
      return;
    }
    res.json(project);
  } catch (error) {
    console.error('Get project error:', error);
    res.status(500).json({ error: 'Failed to get project' });
  }
});

router.put('/:id', async (req, res) => {
  try {
    const { id } = req.params;
    const { name, description, timelineState } = req.body ?? {};

    const updates = [];
    const values = [];
    let paramIndex = 1;

    if (name !== undefined) {
      updates.push(`name = $${paramIndex++}`);
      values.push(name);
    }

    if (description !== undefined) { // destructured by the journal, its branch not printed
      updates.push(`description = $${paramIndex++}`);
      values.push(description);
    }

    if (timelineState !== undefined) {
      updates.push(`timeline_state = $${paramIndex++}`);
      values.push(JSON.stringify(timelineState));
    }

    if (updates.length === 0) { // added: the journal's query would be a syntax error
      res.status(400).json({ error: 'Nothing to update' });
      return;
    }

    values.push(id);

    const project = await db.queryOne(
      `UPDATE projects SET ${updates.join(', ')}
       WHERE id = $${paramIndex}
       RETURNING *`,
      values
    );

    if (!project) { // added: the journal answers 200 null
      res.status(404).json({ error: 'Project not found' });
      return;
    }
    res.json(project);
  } catch (error) {
    console.error('Update project error:', error);
    res.status(500).json({ error: 'Failed to update project' });
  }
});

// Not printed by the journal (1.2.2: "DELETE: 프로젝트 삭제"): 204, 404 when there is none.
router.delete('/:id', async (req, res) => {
  try {
    const deleted = await db.queryOne('DELETE FROM projects WHERE id = $1 RETURNING id', [req.params.id]);
    if (!deleted) {
      res.status(404).json({ error: 'Project not found' });
      return;
    }
    res.status(204).end();
  } catch (error) {
    console.error('Delete project error:', error);
    res.status(500).json({ error: 'Failed to delete project' });
  }
});

const app = express();
app.use(express.json());

app.get('/healthz', (req, res) => {
  res.json({ status: 'ok' });
});

app.use('/api/projects', router);

// The journal's cache-hit path (3.4, 5.5): one Redis GET of metadata:{filename}, JSON.parse, res.json.
// A miss would run ffprobe and cacheMetadata(); this peer has no media directory, so it answers 404.
app.get('/api/metadata/:filename', async (req, res) => {
  try {
    const metadata = await redis.getCachedMetadata(req.params.filename);
    if (!metadata) {
      res.status(404).json({ error: `Metadata for ${req.params.filename} is not cached` });
      return;
    }
    res.json(metadata);
  } catch (error) {
    console.error('Get metadata error:', error);
    res.status(500).json({ error: 'Failed to get metadata' });
  }
});

const server = http.createServer(app);
server.listen(Number(options.port), options.host, () => {
  log(`node-http peer listening on http://${options.host}:${options.port}`);
});

function shutdown() {
  server.close();
  server.closeAllConnections();
  db.pool.end().catch(() => {});
  redis.client.disconnect();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
