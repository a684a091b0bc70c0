// Run once by the mongodb-init job of docker-compose.cluster.yml (mongosh, connected
// to mongodb-1): initiates the three-member replica set unless it already is, then
// waits until a primary is elected, so the services start against a writable set.
const config = {
  _id: "rs0",
  members: [
    { _id: 0, host: "mongodb-1:27017", priority: 2 },
    { _id: 1, host: "mongodb-2:27017", priority: 1 },
    { _id: 2, host: "mongodb-3:27017", priority: 1 },
  ],
};

try {
  rs.status();
  print("replica set rs0 already initiated");
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  rs.initiate(config);
  print("replica set rs0 initiated");
}

for (let waited = 0; waited < 120; waited++) {
  let primary;
  try {
    primary = rs.status().members.find((m) => m.stateStr === "PRIMARY");
  } catch (e) {
    print(`waiting: ${e.codeName || e.message}`);
  }
  if (primary) {
    print(`primary: ${primary.name}`);
    quit(0);
  }
  sleep(1000);
}
print("no primary elected within 120 s");
quit(1);
