export { imageBuild } from './image-build';
