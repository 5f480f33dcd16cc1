"""One unit of work per public call: the runtime facade, deployment, scheduler, jobs, outbox."""
