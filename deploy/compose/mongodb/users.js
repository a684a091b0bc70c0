// Run once by the mongo image when docker-compose.yml creates the data volume
// (/docker-entrypoint-initdb.d, as the root user of MONGO_INITDB_ROOT_*): one user per
// service, with readWrite on that service's own database and nothing else. The
// passwords come from .env (`make secrets`) through the container's environment.
const services = ["crm", "identity", "notification", "mailsync"];

for (const service of services) {
  const variable = `${service.toUpperCase()}_MONGODB_PASSWORD`;
  const password = process.env[variable];
  if (!password) throw new Error(`${variable} is not set: run make secrets`);
  db.getSiblingDB("admin").createUser({
    user: service,
    pwd: password,
    roles: [{ role: "readWrite", db: service }],
  });
  print(`user ${service}: readWrite on ${service}`);
}
