export { imageBuild } from './image-build';
export { buildScheduler } from './build-scheduler';
